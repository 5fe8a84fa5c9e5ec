"""The flag allow-list's dev half: parse-only virtualenvs for the pinned engines (`venvs`) and probe
scripts that run each engine's own parser inside them (`probe_*.py`, driven by `live`), one process per
engine. `invoke check-flags`, CI and the venv tests use it; what ships is infra/flagcheck/snapshot.py
and the snapshots it writes."""

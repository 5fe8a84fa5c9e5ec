"""Real-parser check for rendered launch plans (issue 2, item 8).

Two halves:

- `snapshot` (pure Python, no engine import): the committed JSON dump of each engine's serve
  parser and registries, and `check_argv` that enforces exact option names, values, choices and
  registry values. The core and the in-image launcher use this half.
- `venvs` + `live` + `probe_*.py`: parse-only virtualenvs for the pinned engines and probe scripts
  that run the engine's own parser inside them, one process per engine. `invoke check-flags`
  and the venv tests use this half.
"""

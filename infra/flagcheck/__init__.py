"""The flag allow-list the plan checks launch commands against (issue 2, item 8).

`snapshot` (pure Python, no engine import): the committed JSON dump of each engine's serve parser and
registries (snapshots/), and `check_argv` that enforces exact option names, values, choices and
registry values. The core and the in-image launcher use it, so it ships in the image.

The dev tooling that writes and re-checks those snapshots against the engines' real parsers (parse-only
venvs, probe scripts, `invoke check-flags`) is devtools/flagcheck/, outside the image.
"""

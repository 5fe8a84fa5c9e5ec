"""The python tool server: gpt-oss's built-in `python` tool as an MCP server over SSE, run beside the engine.

Interface (for the deploy wiring, the plan's tool-server flag and the smoke check):
- Start: `python -m infra.toolserver --host 0.0.0.0 --port 8765 [--scratch /scratch] [--python /usr/local/bin/python3]`
  (the image's entrypoint is `python3 -m infra.toolserver`, its CMD `--host 0.0.0.0 --port 8765`). It serves SSE at
  http://HOST:PORT/sse, so the engine flag is `--tool-server HOST:PORT` (vLLM and SGLang append /sse).
- MCP: server name `python` (isolation.SERVER_NAME), instructions = the tool's prompt text (limits, no network,
  files persist per conversation, interpreter state does not); tool `python` {"code": str} -> text (errors too,
  with is_error set); tool `cleanup_session` (meta include_in_prompt=False, vLLM calls it after each request).
- Conversation: the `x-session-id` header (vLLM: its request id) picks the scratch dir; without it the SSE session.
- Limits: env TOOLSERVER_TIMEOUT_S, _MAX_OUTPUT_BYTES, _MEMORY_MB, _MAX_PROCS, _MAX_FILE_MB, _MAX_OPEN_FILES,
  _MAX_CONCURRENT, _QUEUE_WAIT_S, _MAX_CODE_BYTES, _SCRATCH_MB, _SESSION_TTL_S, _MAX_SESSIONS, _CHILD_UID
  (sandbox.Limits: defaults and bounds), TOOLSERVER_SCRATCH_DIR, TOOLSERVER_PYTHON, TOOLSERVER_REQUIRE_LANDLOCK=1.
  A bad value or a secret's name in its environment (isolation.FORBIDDEN_ENV) stops it with one line, exit 2.
- Container isolation: infra/toolserver/isolation.py (docker_run_options(), container(), kubernetes_*()).
- Image: images/toolserver/ (python images/toolserver/build.py; base pinned in infra/catalogue/images.yaml).

- Engines checked (2026-12-05): vLLM CPU 0.32 with vLLM's own MCPToolServer (tests/toolserver/test_engine_client.py),
  vLLM 0.33's client code is the same; SGLang 0.5.23 calls the same way but sends no x-session-id and filters on
  annotations (which mcp 2.x types drop), so on SGLang the tool shows in the prompt as a function.
- Tests reuse tests/toolserver/harness.py: `with running_toolserver() as s:` then `--tool-server s.hostport`.

Modules: isolation (pure settings), sandbox (one call in a fresh confined process), child (the in-process
confinement: rlimits, Landlock, seccomp), server (the MCP server and per-conversation scratch dirs).
"""

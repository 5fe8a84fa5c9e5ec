"""Clients that prove an OpenAI-compatible gpt-oss endpoint works.

- :mod:`infra.endpoint.target`   where the endpoint is (``--url`` or Pulumi stack outputs)
- :mod:`infra.endpoint.deadline` overall deadlines per request and per task, and the HTTP clients that honour them
- :mod:`infra.endpoint.safetext` server and user text made safe for the terminal (no markup, no control codes)
- :mod:`infra.endpoint.sse`      server-sent-events parsing and chat-stream assembly
- :mod:`infra.endpoint.harmony`  detection of harmony-format leaks into API fields
- :mod:`infra.endpoint.checks`   the named smoke-test checks and their runner
- :mod:`infra.endpoint.checks_responses` the Responses API, structured output and answer checks
- :mod:`infra.endpoint.ready`    ``wait-ready`` polling
- :mod:`infra.endpoint.bench`    the async streaming benchmark client
- :mod:`infra.endpoint.report`   rich tables and the matplotlib plot

Imports stay light: httpx and rich at module level, jsonschema and matplotlib lazily.
"""

"""gptoss-stacks: gpt-oss on vLLM or SGLang, reproducibly, per environment.

The core (constants, catalogue, spec, stackfile, fit, envmap, plan, render) imports only
pydantic, PyYAML and jinja2 so the in-image launcher can reuse it without Pulumi.
"""

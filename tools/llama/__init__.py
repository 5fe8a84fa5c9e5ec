"""Test-only tooling: a real ``llama-server`` and a tiny deterministic gpt-oss GGUF model.

``tools.llama.build.build_llama_server()`` builds llama.cpp's OpenAI-compatible server
from the llama-cpp-python sdist (its ``vendor/llama.cpp``); ``tools.llama.model.ensure_tiny_model()``
writes a small gpt-oss-architecture GGUF whose weights make it answer in valid harmony format.
Both are cached under ``~/.cache/gptoss-stacks/`` (override: ``GPTOSS_STACKS_CACHE``).
"""

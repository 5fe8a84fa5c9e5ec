"""Hand-written launch.json samples (from the image READMEs) for the flag-check tests."""
from __future__ import annotations

VLLM = ["vllm", "serve", "openai/gpt-oss-120b"]
SGLANG = ["python3", "-m", "sglang.launch_server", "--model-path", "openai/gpt-oss-120b"]

# The vLLM Hopper recipe (the vLLM gpt-oss recipe) as our renderer writes it: dashed keys, true booleans only.
HOPPER_YAML = """\
host: 0.0.0.0
port: 8000
tensor-parallel-size: 1
max-model-len: 32768
max-num-batched-tokens: 8192
no-enable-prefix-caching: true
async-scheduling: true
enable-auto-tool-choice: true
tool-call-parser: openai
reasoning-parser: openai_gptoss
attention-backend: FLASH_ATTN
max-cudagraph-capture-size: 2048
stream-interval: 20
speculative-config: '{"model":"nvidia/gpt-oss-120b-Eagle3-v2","num_speculative_tokens":3,"method":"eagle3"}'
"""


def vllm_launch(yaml_text: str = HOPPER_YAML, extra: list[str] | None = None, env=None) -> dict:
    return {"stack": "t-vllm", "backend": "vllm", "model": "openai/gpt-oss-120b", "gpu": "h100-80gb",
            "argv": VLLM + ["--config", "/etc/gptoss/vllm.yaml", *(extra or [])],
            "env": env or {}, "files": {"vllm.yaml": yaml_text}, "config_dir": "/etc/gptoss"}


def sglang_launch(extra: list[str] | None = None, files: dict | None = None) -> dict:
    return {"stack": "t-sglang", "backend": "sglang", "model": "openai/gpt-oss-120b", "gpu": "h100-80gb",
            "argv": SGLANG + ["--tp-size", "1", "--mem-fraction-static", "0.9", "--tool-call-parser", "gpt-oss",
                              "--reasoning-parser", "gpt-oss", "--kv-cache-dtype", "fp8_e4m3", *(extra or [])],
            "env": {}, "files": files or {}, "config_dir": "/etc/gptoss"}

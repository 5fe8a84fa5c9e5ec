"""Where a stack's clients reach its server: one value per stack, computed without Pulumi.

Each target's pure module has `endpoint(spec, plan, stack) -> Endpoint` (docker.py, runpod.py,
kubernetes.py). `invoke render` (client.env) and the deployed component (the endpoint_url,
health_url, client_env and tunnel_command outputs) both read it, so the two cannot differ. The one
client.env format is infra/templates/client.env.j2, filled by `client_env_text` on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from infra.templating import render_template, sh_quote

# How a client on the deploying machine gets to host:port.
Access = Literal["direct", "ssh-tunnel", "port-forward", "load-balancer"]
LOOPBACK_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    host: str                              # what a client on the deploying machine connects to
    port: int | str                        # a str only for a placeholder RunPod fills in when the pod starts
    access: Access
    via: tuple[str, ...] | None = None     # the command that makes host:port reachable (a tunnel, a port-forward)
    reaches: str | None = None             # what `via` or the address leads to, for people
    cluster_url: str | None = None         # the URL in-cluster clients use (kubernetes)
    scheme: str = "http"

    @property
    def root(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/v1"

    @property
    def health_url(self) -> str:
        return f"{self.root}/health"  # vLLM and SGLang serve it at the root, without a key

    def at(self, host: str) -> Endpoint:
        """The same endpoint at an address learnt at deploy time (a cloud load balancer's)."""
        return replace(self, host=host)

    def how(self) -> list[str]:
        """One line each: how a client gets there (empty for a plain direct address)."""
        lines = []
        if self.via:
            what = {"ssh-tunnel": "an SSH tunnel", "port-forward": "kubectl port-forward"}.get(self.access, self.access)
            lines.append(f"Reached through {what}" + (f" to {self.reaches}" if self.reaches else "")
                         + "; run first: " + " ".join(sh_quote(w) for w in self.via))
        elif self.reaches:
            lines.append(self.reaches)
        if self.cluster_url:
            lines.append(f"In-cluster clients use {self.cluster_url}")
        return lines


def client_env_text(endpoint: Endpoint, *, stack: str, served_model: str, api_key: str | None,
                    key_required: bool) -> str:
    """The image READMEs' client `.env` (LLM_BASE_URL, OPENAI_API_KEY, LLM_MODEL). `api_key` is the
    deployed key (None in `invoke render`, which writes a placeholder when the server wants one)."""
    return render_template("client.env.j2", stack=stack, base_url=endpoint.base_url, how=endpoint.how(),
                           api_key=api_key, key_required=key_required, served_model=served_model)

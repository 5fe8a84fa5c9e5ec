"""`GptOssDeployment`: one stack's image, API key and server, as one Pulumi component.

    image (docker_build.Image)  ->  target resources (docker: RemoteImage -> Container)
    api key (config secret, or RandomPassword when the endpoint is reachable from outside)

Everything the component can refuse it refuses before registering itself, so a bad stack
creates nothing. Targets live in infra/deploy/targets/ (issue 6 adds runpod and kubernetes).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_random as random

from infra import builtin_tools as BT
from infra import constants as C
from infra.deploy.image import CONTEXT_ROOT, IMAGES_DIR, assemble_context, build_image, image_settings, image_warnings, validate_image
from infra.deploy import toolserver_image as TS
from infra.deploy.targets import TargetContext, get_target
from infra.deploy.targets.endpoint import client_env_text
from infra.spec import SpecError

TYPE_TOKEN = "gptoss:index:Deployment"
# Config secret key -> the container env var that carries it (API_KEY is handled on its own).
_ENV_OF_SECRET = {env: key for key, env in C.SECRET_ENV.items()}
API_KEY_LENGTH = 48


@dataclass(frozen=True)
class GptOssDeploymentArgs:
    """Typed inputs. `secrets` maps set secret config keys (hf_token, api_key, ...) to secret Outputs."""

    spec: Any                                           # infra.spec.StackSpec
    plan: Any                                           # infra.plan.LaunchPlan
    secrets: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)
    images_dir: Path = IMAGES_DIR
    context_root: Path = CONTEXT_ROOT       # where the image build context is assembled
    # Fetch build inputs from the network (the tool server's wheels from PyPI) while assembling contexts.
    # None: on `pulumi up`, not on a preview. The tests' harness passes False (no PyPI under the mocks).
    fetch_build_inputs: bool | None = None


def deploy_refusals(spec, plan) -> list[SpecError]:
    """What `invoke up` refuses before creating anything, the first refusal of each check (secrets,
    image, target). `validate` raises the first; `invoke render` shows them all."""
    found = []
    for check in (spec.check_deploy_secrets, lambda: validate_image(spec, plan), lambda: get_target(spec).validate(spec, plan),
                  lambda: TS.validate_toolserver_image(spec, plan)):
        try:
            check()
        except SpecError as exc:
            found.append(exc)
    return found


def validate(args: GptOssDeploymentArgs) -> None:
    """Every refusal, with field and fix (infra.spec.SpecError). Registers nothing."""
    spec, plan = args.spec, args.plan
    refusals = deploy_refusals(spec, plan)
    if refusals:
        raise refusals[0]
    missing = [k for k in spec.secrets_set if k not in args.secrets]
    if missing:  # a programming error, not a user one: the spec says set, nobody passed the value
        raise ValueError(f"secrets {missing} are set in the stack but were not passed to the component")


def labels_for(spec, plan) -> dict[str, str]:
    return {
        "gptoss.stack": spec.stack,
        "gptoss.backend": plan.backend,
        "gptoss.engine-version": plan.image["engine_version"],
        "gptoss.model": plan.model,
        "gptoss.gpu": plan.gpu,
        "gptoss.project": C.PROJECT,
    }


class GptOssDeployment(pulumi.ComponentResource):
    endpoint_url: pulumi.Output[str]
    health_url: pulumi.Output[str]
    model: pulumi.Output[str]
    backend: pulumi.Output[str]
    gpu: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    api_key: pulumi.Output[str] | None
    client_env: pulumi.Output[str]
    launch_plan: pulumi.Output[dict]
    logs_command: pulumi.Output[list] | None

    def __init__(self, name: str, args: GptOssDeploymentArgs, opts: pulumi.ResourceOptions | None = None):
        validate(args)  # before registering anything, the component included
        super().__init__(TYPE_TOKEN, name, None, opts)
        spec, plan = args.spec, args.plan
        stack = spec.stack or name
        target = get_target(spec)
        child = pulumi.ResourceOptions(parent=self)
        for warning in [*plan.warnings, *image_warnings(spec, plan), *TS.toolserver_warnings(spec)]:
            pulumi.log.warn(warning, resource=self)

        registry_password = args.secrets.get("registry_password")
        settings = image_settings(spec, plan, args.images_dir, args.context_root)
        assemble_context(plan.backend, args.context_root, args.images_dir)
        labels = labels_for(spec, plan)
        image_labels = {k: v for k, v in labels.items() if k in ("gptoss.backend", "gptoss.engine-version", "gptoss.project")}
        self.image = build_image(
            f"{stack}-build", settings,
            registry_username=spec.image.registry_username, registry_password=registry_password,
            build_host=target.build_host(spec), parent=self, labels=image_labels,
        )
        self.toolserver_image = None
        if BT.runs_tool_server(spec):  # the python tool server's own image, same registry and build host
            TS.assemble_toolserver_context(args.context_root, args.images_dir, install=(not pulumi.runtime.is_dry_run() if args.fetch_build_inputs is None
                                                   else args.fetch_build_inputs))
            self.toolserver_image = build_image(
                f"{stack}-toolserver-build", TS.toolserver_settings(spec, plan, args.images_dir, args.context_root),
                registry_username=spec.image.registry_username, registry_password=registry_password,
                build_host=target.build_host(spec), parent=self,
                labels={"gptoss.project": C.PROJECT, "gptoss.component": "toolserver"})

        self.api_key = self._api_key(stack, spec, args.secrets, child)
        secret_env: dict[str, pulumi.Output[str]] = {}
        for var in plan.secret_env:
            if var == "API_KEY":
                if self.api_key is not None:
                    secret_env[var] = self.api_key
            elif _ENV_OF_SECRET.get(var) in args.secrets:
                secret_env[var] = args.secrets[_ENV_OF_SECRET[var]]

        result = target.deploy(TargetContext(
            stack=stack, spec=spec, plan=plan, image_ref=self.image.ref, image_digest=self.image.digest,
            secret_env=secret_env, registry_username=spec.image.registry_username,
            registry_password=registry_password, labels=labels, parent=self,
            toolserver_image_ref=self.toolserver_image.ref if self.toolserver_image else None,
            toolserver_image_digest=self.toolserver_image.digest if self.toolserver_image else None,
        ))

        # Where clients connect is the target's pure endpoint(), the same value `invoke render` writes;
        # only an address learnt at deploy time (a cloud load balancer's) is filled in here.
        endpoint = target.endpoint(spec, plan, stack)
        host = pulumi.Output.from_input(result.host if result.host is not None else endpoint.host)
        served = spec.served_model_name or spec.model
        self.endpoint_url = host.apply(lambda h: endpoint.at(h).base_url)
        self.health_url = host.apply(lambda h: endpoint.at(h).health_url)
        self.model = pulumi.Output.from_input(served)
        self.backend = pulumi.Output.from_input(plan.backend)
        self.gpu = pulumi.Output.from_input(plan.gpu)
        self.image_ref = self.image.ref
        self.launch_plan = pulumi.Output.from_input(plan.to_launch_json())
        self.logs_command = pulumi.Output.from_input(result.logs_command) if result.logs_command is not None else None
        key = self.api_key if self.api_key is not None else pulumi.Output.from_input("")
        self.client_env = pulumi.Output.secret(pulumi.Output.all(host, key).apply(
            lambda v: client_env_text(endpoint.at(v[0]), stack=stack, served_model=served, api_key=v[1] or None,
                                      key_required="API_KEY" in plan.secret_env)))
        self.extra_outputs = dict(result.extra_outputs)
        if self.toolserver_image is not None:
            self.extra_outputs["toolserver_image_ref"] = self.toolserver_image.ref
        if endpoint.via:
            self.extra_outputs["tunnel_command"] = list(endpoint.via)
        if endpoint.cluster_url:
            self.extra_outputs["cluster_endpoint_url"] = endpoint.cluster_url

        self.register_outputs(self.outputs())

    def _api_key(self, stack: str, spec, secrets: Mapping[str, pulumi.Output[str]], child) -> pulumi.Output[str] | None:
        """Config secret if set; generated when the endpoint is reachable from outside (or asked
        for); none for a loopback-only endpoint (spec.wants_api_key decides)."""
        if not spec.wants_api_key:
            return None
        if spec.api_key_mode != "generate" and "api_key" in secrets:
            return pulumi.Output.secret(secrets["api_key"])
        password = random.RandomPassword(f"{stack}-api-key", length=API_KEY_LENGTH, special=False, opts=child)
        # The provider marks `result` secret on its side; wrap it here too so no engine or mock
        # can ever see it in plain text.
        return pulumi.Output.secret(password.result)

    def outputs(self) -> dict[str, Any]:
        """The stack outputs ARCHITECTURE.md names (the contract for smoke-test/bench), then extras."""
        out: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "health_url": self.health_url,
            "model": self.model,
            "backend": self.backend,
            "gpu": self.gpu,
            "image_ref": self.image_ref,
            "api_key": self.api_key,
            "client_env": self.client_env,
            "launch_plan": self.launch_plan,
            "logs_command": self.logs_command,
        }
        for k, v in self.extra_outputs.items():
            out.setdefault(k, v)
        return out

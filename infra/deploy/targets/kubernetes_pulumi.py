"""Kubernetes target, the Pulumi registration: the objects k8s/manifests.py builds, as
pulumi-kubernetes resources in dependency order (the order and the reasons: kubernetes.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from infra import constants as C
from infra.deploy.targets import kubernetes as K
from infra.deploy.targets.base import PureParts, TargetContext, TargetResult, startup_grace_seconds
from infra.deploy.targets.k8s import autoscaling as A
from infra.deploy.targets.k8s import router as R
from infra.deploy.targets.k8s import toolserver
from infra.deploy.targets.k8s import weights as W
from infra.deploy.targets.k8s.manifests import (PORT_NAME, ROLLOUT_MARGIN_S, cache_claim_spec, deployment_spec,
                                                dockerconfigjson, download_job, gpus_per_pod, hpa_spec, logs_command,
                                                model_revision, network_policies, pdb_spec, replicas_wanted,
                                                router_values, scaled_object_spec, service_spec)
from infra.deploy.targets.k8s.names import (engine_pod_selector, front_service, k8s_names, label_value, object_annotations,
                                            object_labels, router_of, selector_labels)


class KubernetesTarget(PureParts):
    pure = K

    def deploy(self, ctx: TargetContext) -> TargetResult:
        """Registers, in this order: namespace, NetworkPolicies and Secrets (before any pod, so none
        runs unfenced), the cache claim and download Job, the Deployment/Service/PDB, the router,
        the autoscaler."""
        reg = _Registration(ctx)
        deps = reg.fences()
        deps += reg.cache(deps)
        deps += toolserver.register(ctx, instance=label_value(ctx.stack), engine_pods=engine_pod_selector(ctx.stack),
                                    meta=reg.meta, pull_secret=reg.names.pull_secret if reg.with_pull_secret else None,
                                    opts=reg.opts([reg.namespace]))  # the python tool server (issue 22)
        deployment, service = reg.server(deps)
        front = reg.router(deps) or service
        reg.autoscaling(deployment, service)
        spec, stack = ctx.spec, ctx.stack
        extra: dict[str, Any] = {
            "namespace": reg.names.namespace,
            "deployment": reg.names.app,
            "service": front_service(stack, spec),
            "engine_service": reg.names.app,
            "router": router_of(spec),
            "model_revision": model_revision(spec, ctx.plan),
            "replicas": replicas_wanted(spec),
            "gpus_per_pod": gpus_per_pod(ctx.plan),
        }
        # Where clients connect is K.endpoint's (the component reads it); only a load balancer's
        # address is learnt here, once the cloud has assigned it.
        host = service.status.apply(_ingress_host) if K.publishes_engine(spec) else None
        return TargetResult(host=host, logs_command=logs_command(stack, spec),
                            extra_outputs=extra, depends_on=[deployment, service, front])


class _Registration:
    """One stack's resources, registered step by step (children of the component)."""

    def __init__(self, ctx: TargetContext):
        import pulumi_kubernetes

        self.k8s = pulumi_kubernetes
        self.ctx, self.spec, self.plan, self.stack = ctx, ctx.spec, ctx.plan, ctx.stack
        self.names = k8s_names(ctx.stack, ctx.spec)
        self.labels = object_labels(ctx.stack, ctx.plan)
        self.annotations = object_annotations(ctx.labels)
        self.secret_vars = sorted(ctx.secret_env)
        self.with_pull_secret = ctx.registry_password is not None and bool(ctx.spec.image.registry)
        self.namespace: pulumi.Resource | None = None

    def meta(self, name: str, extra_annotations: Mapping[str, str] | None = None) -> dict:
        return {"name": name, "namespace": self.names.namespace, "labels": self.labels,
                "annotations": {**self.annotations, **(extra_annotations or {})}}

    def opts(self, depends_on: list[pulumi.Resource], **kw: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.ctx.parent, depends_on=depends_on, **kw)

    def fences(self) -> list[pulumi.Resource]:
        """The namespace, the NetworkPolicies, the Secret and the image pull Secret."""
        k8s, stack, names, ctx = self.k8s, self.stack, self.names, self.ctx
        self.namespace = k8s.core.v1.Namespace(
            f"{stack}-namespace",
            metadata={"name": names.namespace, "labels": {"app.kubernetes.io/part-of": C.PROJECT}},
            # Other stacks may share the namespace; destroying one stack must not delete theirs.
            opts=pulumi.ResourceOptions(parent=ctx.parent, retain_on_delete=True),
        )
        in_ns = self.opts([self.namespace])
        deps: list[pulumi.Resource] = [self.namespace]
        for policy_name, policy in network_policies(stack, self.spec, self.plan).items():
            deps.append(k8s.networking.v1.NetworkPolicy(
                f"{stack}-netpol-{policy_name.rsplit('-', 1)[-1]}", metadata=self.meta(policy_name), spec=policy, opts=in_ns))
        if self.secret_vars:
            deps.append(k8s.core.v1.Secret(
                f"{stack}-secrets",
                metadata=self.meta(names.secret),
                type="Opaque",
                # Each value is a Pulumi secret Output: encrypted in state, hidden in diffs.
                string_data={var: pulumi.Output.secret(ctx.secret_env[var]) for var in self.secret_vars},
                opts=in_ns,
            ))
        if self.with_pull_secret:
            registry_host = self.spec.image.registry.split("/")[0]
            username = ctx.registry_username or ""
            payload = pulumi.Output.secret(pulumi.Output.from_input(ctx.registry_password).apply(
                lambda password: dockerconfigjson(registry_host, username, password)))
            deps.append(k8s.core.v1.Secret(
                f"{stack}-pull-secret",
                metadata=self.meta(names.pull_secret),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": payload},
                opts=in_ns,
            ))
        return deps

    def cache(self, deps: list[pulumi.Resource]) -> list[pulumi.Resource]:
        """The shared cache claim (unless an existing one is used) and the weights download Job."""
        k8s, stack, spec, settings = self.k8s, self.stack, self.spec, self.spec.target_settings
        added: list[pulumi.Resource] = []
        if settings.cache == "shared" and not settings.existing_claim:
            added.append(k8s.core.v1.PersistentVolumeClaim(
                f"{stack}-cache",
                metadata=self.meta(self.names.cache),
                spec=cache_claim_spec(spec),
                # The cache holds ~63 GB of weights and compile caches: keep it on destroy.
                opts=self.opts([self.namespace], retain_on_delete=True),
            ))
        if W.uses_download_job(settings):
            revision = model_revision(spec, self.plan)
            timeout = startup_grace_seconds(spec.model) * 2
            added.append(k8s.batch.v1.Job(
                f"{stack}-weights",
                metadata=self.meta(W.job_name(self.names.app, revision), {"pulumi.com/timeoutSeconds": str(timeout)}),
                spec=download_job(stack, spec, self.plan, image=self.ctx.image_ref, secret_vars=self.secret_vars,
                                  with_pull_secret=self.with_pull_secret),
                # Pulumi waits for the Job to complete: the engine pods start on a filled cache.
                opts=self.opts([*deps, *added]),
            ))
        return added

    def server(self, deps: list[pulumi.Resource]) -> tuple[pulumi.Resource, pulumi.Resource]:
        """The engine Deployment, its Service and its PodDisruptionBudget."""
        k8s, stack, spec, plan, names = self.k8s, self.stack, self.spec, self.plan, self.names
        timeout = startup_grace_seconds(spec.model) + ROLLOUT_MARGIN_S
        deployment = k8s.apps.v1.Deployment(
            f"{stack}-server",
            metadata=self.meta(names.app, {"pulumi.com/timeoutSeconds": str(timeout)}),
            spec=deployment_spec(stack, spec, plan, image=self.ctx.image_ref, secret_vars=self.secret_vars,
                                 with_pull_secret=self.with_pull_secret),
            opts=self.opts(deps),
        )
        in_ns = self.opts([self.namespace])
        service = k8s.core.v1.Service(f"{stack}-service", metadata=self.meta(names.app),
                                      spec=service_spec(stack, spec, plan), opts=in_ns)
        k8s.policy.v1.PodDisruptionBudget(f"{stack}-pdb", metadata=self.meta(names.pdb), spec=pdb_spec(stack), opts=in_ns)
        return deployment, service

    def router(self, deps: list[pulumi.Resource]) -> pulumi.Resource | None:
        """The SMG router (its Helm chart, the image pinned by digest), when the stack has one."""
        if router_of(self.spec) != "smg":
            return None
        release, pinned = self.names.router_release, R.router_image()

        def pin_image(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
            props = R.pin_router_image(args.type_, args.props, release, pinned)
            return None if props is None else pulumi.ResourceTransformResult(props, args.opts)

        return self.k8s.helm.v4.Chart(
            f"{self.stack}-router",
            chart=R.chart_ref(),
            version=R.SMG_CHART_VERSION,
            namespace=self.names.namespace,
            name=release,
            values=router_values(self.stack, self.spec, with_api_key="API_KEY" in self.secret_vars),
            opts=self.opts(deps, transforms=[pin_image] if pinned else None),
        )

    def autoscaling(self, deployment: pulumi.Resource, service: pulumi.Resource) -> None:
        """The KEDA ScaledObject or the HPA, and the ServiceMonitor."""
        k8s, stack, spec, plan, names = self.k8s, self.stack, self.spec, self.plan, self.names
        auto = spec.target_settings.autoscaling
        if auto.enabled and auto.mode == "keda":
            k8s.apiextensions.CustomResource(
                f"{stack}-scaler", api_version=A.KEDA_API_VERSION, kind="ScaledObject",
                metadata=self.meta(names.autoscaler), spec=scaled_object_spec(stack, spec, plan),
                opts=self.opts([deployment]))
        elif auto.enabled:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{stack}-hpa", metadata=self.meta(names.autoscaler), spec=hpa_spec(stack, spec, plan),
                opts=self.opts([deployment]))
        if auto.service_monitor:
            k8s.apiextensions.CustomResource(
                f"{stack}-metrics", api_version=A.SERVICE_MONITOR_API_VERSION, kind="ServiceMonitor",
                metadata=self.meta(names.app),
                spec=A.service_monitor_spec(auto, selector=selector_labels(stack), namespace=names.namespace,
                                            port_name=PORT_NAME,
                                            key_secret=names.secret if "API_KEY" in self.secret_vars else None),
                opts=self.opts([service]))


def _ingress_host(status) -> str:
    try:
        ingress = status.load_balancer.ingress[0]
        return ingress.ip or ingress.hostname or "pending-load-balancer"
    except (AttributeError, IndexError, TypeError):
        return "pending-load-balancer"

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
from infra.deploy.targets.k8s import weights as W
from infra.deploy.targets.k8s.manifests import (PORT_NAME, ROLLOUT_MARGIN_S, cache_claim_spec, deployment_spec,
                                                dockerconfigjson, download_job, gpus_per_pod, hpa_spec, logs_command,
                                                model_revision, network_policies, pdb_spec, replicas_wanted,
                                                router_values, scaled_object_spec, service_spec)
from infra.deploy.targets.k8s.names import (front_service, k8s_names, object_annotations, object_labels, router_of,
                                            selector_labels)


class KubernetesTarget(PureParts):
    pure = K

    def deploy(self, ctx: TargetContext) -> TargetResult:
        import pulumi_kubernetes as k8s

        spec, plan, stack = ctx.spec, ctx.plan, ctx.stack
        settings = spec.target_settings
        names = k8s_names(stack, spec)
        labels = object_labels(stack, plan)
        annotations = object_annotations(ctx.labels)

        def meta(name: str, extra_annotations: Mapping[str, str] | None = None) -> dict:
            return {"name": name, "namespace": names.namespace, "labels": labels,
                    "annotations": {**annotations, **(extra_annotations or {})}}

        namespace = k8s.core.v1.Namespace(
            f"{stack}-namespace",
            metadata={"name": names.namespace, "labels": {"app.kubernetes.io/part-of": C.PROJECT}},
            # Other stacks may share the namespace; destroying one stack must not delete theirs.
            opts=pulumi.ResourceOptions(parent=ctx.parent, retain_on_delete=True),
        )
        in_ns = pulumi.ResourceOptions(parent=ctx.parent, depends_on=[namespace])

        secret_vars = sorted(ctx.secret_env)
        server_deps: list[pulumi.Resource] = [namespace]
        # Before any pod exists, so none ever runs unfenced.
        for policy_name, policy in network_policies(stack, spec, plan).items():
            server_deps.append(k8s.networking.v1.NetworkPolicy(
                f"{stack}-netpol-{policy_name.rsplit('-', 1)[-1]}", metadata=meta(policy_name), spec=policy, opts=in_ns))
        if secret_vars:
            secret = k8s.core.v1.Secret(
                f"{stack}-secrets",
                metadata=meta(names.secret),
                type="Opaque",
                # Each value is a Pulumi secret Output: encrypted in state, hidden in diffs.
                string_data={var: pulumi.Output.secret(ctx.secret_env[var]) for var in secret_vars},
                opts=in_ns,
            )
            server_deps.append(secret)

        with_pull_secret = ctx.registry_password is not None and bool(spec.image.registry)
        if with_pull_secret:
            registry_host = spec.image.registry.split("/")[0]
            username = ctx.registry_username or ""
            payload = pulumi.Output.secret(pulumi.Output.from_input(ctx.registry_password).apply(
                lambda password: dockerconfigjson(registry_host, username, password)))
            pull = k8s.core.v1.Secret(
                f"{stack}-pull-secret",
                metadata=meta(names.pull_secret),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": payload},
                opts=in_ns,
            )
            server_deps.append(pull)

        if settings.cache == "shared" and not settings.existing_claim:
            claim = k8s.core.v1.PersistentVolumeClaim(
                f"{stack}-cache",
                metadata=meta(names.cache),
                spec=cache_claim_spec(spec),
                # The cache holds ~63 GB of weights and compile caches: keep it on destroy.
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=[namespace], retain_on_delete=True),
            )
            server_deps.append(claim)
        if W.uses_download_job(settings):
            revision = model_revision(spec, plan)
            timeout = startup_grace_seconds(spec.model) * 2
            job = k8s.batch.v1.Job(
                f"{stack}-weights",
                metadata=meta(W.job_name(names.app, revision), {"pulumi.com/timeoutSeconds": str(timeout)}),
                spec=download_job(stack, spec, plan, image=ctx.image_ref, secret_vars=secret_vars,
                                  with_pull_secret=with_pull_secret),
                # Pulumi waits for the Job to complete: the engine pods start on a filled cache.
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=list(server_deps)),
            )
            server_deps.append(job)

        timeout = startup_grace_seconds(spec.model) + ROLLOUT_MARGIN_S
        deployment = k8s.apps.v1.Deployment(
            f"{stack}-server",
            metadata=meta(names.app, {"pulumi.com/timeoutSeconds": str(timeout)}),
            spec=deployment_spec(stack, spec, plan, image=ctx.image_ref, secret_vars=secret_vars,
                                 with_pull_secret=with_pull_secret),
            opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=server_deps),
        )
        service = k8s.core.v1.Service(
            f"{stack}-service",
            metadata=meta(names.app),
            spec=service_spec(stack, spec, plan),
            opts=in_ns,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{stack}-pdb", metadata=meta(names.pdb), spec=pdb_spec(stack), opts=in_ns)

        front: pulumi.Resource = service
        if router_of(spec) == "smg":
            release, pinned = names.router_release, R.router_image()

            def pin_image(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
                props = R.pin_router_image(args.type_, args.props, release, pinned)
                return None if props is None else pulumi.ResourceTransformResult(props, args.opts)

            front = k8s.helm.v4.Chart(
                f"{stack}-router",
                chart=R.chart_ref(),
                version=R.SMG_CHART_VERSION,
                namespace=names.namespace,
                name=release,
                values=router_values(stack, spec, with_api_key="API_KEY" in secret_vars),
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=server_deps,
                                            transforms=[pin_image] if pinned else None),
            )

        auto = settings.autoscaling
        if auto.enabled and auto.mode == "keda":
            k8s.apiextensions.CustomResource(
                f"{stack}-scaler", api_version=A.KEDA_API_VERSION, kind="ScaledObject",
                metadata=meta(names.autoscaler), spec=scaled_object_spec(stack, spec, plan),
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=[deployment]))
        elif auto.enabled:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{stack}-hpa", metadata=meta(names.autoscaler), spec=hpa_spec(stack, spec, plan),
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=[deployment]))
        if auto.service_monitor:
            k8s.apiextensions.CustomResource(
                f"{stack}-metrics", api_version=A.SERVICE_MONITOR_API_VERSION, kind="ServiceMonitor",
                metadata=meta(names.app),
                spec=A.service_monitor_spec(auto, selector=selector_labels(stack), namespace=names.namespace,
                                            port_name=PORT_NAME,
                                            key_secret=names.secret if "API_KEY" in secret_vars else None),
                opts=pulumi.ResourceOptions(parent=ctx.parent, depends_on=[service]))

        extra: dict[str, Any] = {
            "namespace": names.namespace,
            "deployment": names.app,
            "service": front_service(stack, spec),
            "engine_service": names.app,
            "router": router_of(spec),
            "model_revision": model_revision(spec, plan),
            "replicas": replicas_wanted(spec),
            "gpus_per_pod": gpus_per_pod(plan),
        }
        # Where clients connect is K.endpoint's (the component reads it); only a load balancer's
        # address is learnt here, once the cloud has assigned it.
        host = service.status.apply(_ingress_host) if K.publishes_engine(spec) else None
        return TargetResult(host=host, logs_command=logs_command(stack, spec),
                            extra_outputs=extra, depends_on=[deployment, service, front])


def _ingress_host(status) -> str:
    try:
        ingress = status.load_balancer.ingress[0]
        return ingress.ip or ingress.hostname or "pending-load-balancer"
    except (AttributeError, IndexError, TypeError):
        return "pending-load-balancer"


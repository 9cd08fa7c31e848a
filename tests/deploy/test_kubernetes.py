"""deploy/kubernetes/: every overlay renders, validates against the Kubernetes API's schemas, and
keeps the promises a reviewer checks (tests/deploy/checks.py); each check is shown to catch the
fault it is for on a manifest broken on purpose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy import checks, network
from tests.deploy.manifests import OVERLAYS, Manifest, named, render, workloads

Check = Callable[[list[Manifest]], list[str]]
CHECKS: dict[str, Check] = {
    "schemas": checks.schema_problems,
    "probes": checks.probe_problems,
    "resources": checks.resource_problems,
    "images": checks.image_problems,
    "security": checks.security_problems,
    "migration": checks.migration_problems,
    "workers": checks.worker_problems,
    "network": network.network_problems,
    "config": checks.config_problems,
}


def test_the_trial_and_production_overlays_exist() -> None:
    assert OVERLAYS == ["production", "trial"]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_overlay_passes_check(overlay: str, check: str) -> None:
    assert CHECKS[check](render(overlay)) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_has_every_part(overlay: str) -> None:
    objects = render(overlay)
    components = {workload.component for workload in workloads(objects)}
    assert {"api", "migrate", "worker", "webhooks", "evals", "inference"} <= components
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        named(objects, kind, "tunery-api")
    assert named(objects, "Namespace", "tunery")["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"
    ] == ("restricted")


def test_trial_runs_postgres_redis_and_minio_in_the_cluster() -> None:
    components = {workload.component for workload in workloads(render("trial"))}
    assert {"postgres", "redis", "minio", "create-bucket", "import-model"} <= components


def test_production_uses_managed_services_and_brings_no_secrets() -> None:
    objects = render("production")
    components = {workload.component for workload in workloads(objects)}
    assert not components & {"postgres", "redis", "minio"}
    # The Secrets are made outside git (kubectl create secret, External Secrets): none is rendered.
    assert [obj for obj in objects if obj["kind"] == "Secret"] == []
    pools = {
        workload.labels.get("tunery.dev/pool")
        for workload in workloads(objects)
        if workload.component == "worker"
    }
    assert pools == {"a100", "l4"}
    for workload in workloads(objects):
        if workload.component == "worker":
            assert workload.spec["nodeSelector"]["nvidia.com/gpu.product"], workload.name


# Each fault, made in a copy of the rendered objects, and the check that must name it.
def _spec(objects: list[Manifest], component: str) -> dict[str, Any]:
    """The pod spec of the first workload of `component` (to change in place)."""
    return next(w for w in workloads(objects) if w.component == component).spec


def _container(objects: list[Manifest], component: str, name: str) -> dict[str, Any]:
    spec = _spec(objects, component)
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def _api(objects: list[Manifest]) -> dict[str, Any]:
    return _container(objects, "api", "api")


def _worker(objects: list[Manifest]) -> dict[str, Any]:
    return _container(objects, "worker", "worker")


def _inference(objects: list[Manifest]) -> dict[str, Any]:
    return _container(objects, "inference", "inference")


def _template_labels(objects: list[Manifest], component: str) -> dict[str, str]:
    for obj in objects:
        labels = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
        if labels.get("app.kubernetes.io/component") == component:
            return labels  # type: ignore[no-any-return]
    raise AssertionError(component)


def _drop(objects: list[Manifest], kind: str, name: str) -> None:
    objects.remove(named(objects, kind, name))


def _drop_migration_job(objects: list[Manifest]) -> None:
    objects.remove(
        next(o for o in objects if o["kind"] == "Job" and o["metadata"]["name"] == "tunery-migrate")
    )


Fault = tuple[str, Callable[[list[Manifest]], object], str]  # check, how to break, what it must say
FAULTS: dict[str, Fault] = {
    "misspelt field": ("schemas", lambda o: _api(o).update(imagePullPolcy="Always"), "imagePullPolcy"),
    "wrong type": (
        "schemas",
        lambda o: named(o, "Deployment", "tunery-api")["spec"].update(replicas="2"),
        "replicas",
    ),
    "no readiness probe": ("probes", lambda o: _api(o).pop("readinessProbe"), "readinessProbe"),
    "readiness on healthz": (
        "probes",
        lambda o: _api(o)["readinessProbe"]["httpGet"].update(path="/healthz"),
        "/readyz",
    ),
    "no liveness probe": ("probes", lambda o: _inference(o).pop("livenessProbe"), "livenessProbe"),
    "no worker liveness": ("probes", lambda o: _worker(o).pop("livenessProbe"), "livenessProbe"),
    "no memory limit": (
        "resources",
        lambda o: _worker(o)["resources"]["limits"].pop("memory"),
        "limits.memory",
    ),
    "init without resources": (
        "resources",
        lambda o: _container(o, "api", "wait-for-migrations").pop("resources"),
        "wait-for-migrations",
    ),
    "latest image": ("images", lambda o: _api(o).update(image="tunery/api:latest"), "not pinned"),
    "untagged image": ("images", lambda o: _inference(o).update(image="tunery/inference"), "not pinned"),
    "another release": ("images", lambda o: _api(o).update(image="tunery/api:0.0.9"), "release"),
    "root user": ("security", lambda o: _spec(o, "api")["securityContext"].update(runAsUser=0), "uid 0"),
    "root allowed": (
        "security",
        lambda o: _spec(o, "worker")["securityContext"].pop("runAsNonRoot"),
        "runAsNonRoot",
    ),
    "writable root": (
        "security",
        lambda o: _inference(o)["securityContext"].update(readOnlyRootFilesystem=False),
        "writable",
    ),
    "escalation": (
        "security",
        lambda o: _container(o, "webhooks", "worker")["securityContext"].pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
    ),
    "no wait for migrations": (
        "migration",
        lambda o: _spec(o, "api").pop("initContainers"),
        "migrate --wait",
    ),
    "worker skips the wait": (
        "migration",
        lambda o: _spec(o, "worker").pop("initContainers"),
        "migrate --wait",
    ),
    "no migration job": ("migration", _drop_migration_job, "exactly one Job"),
    "short grace": (
        "workers",
        lambda o: _spec(o, "worker").update(terminationGracePeriodSeconds=30),
        "terminationGracePeriodSeconds",
    ),
    "gpus disagree": (
        "workers",
        lambda o: _worker(o)["resources"]["limits"].update({checks.GPU: "2"}),
        "--gpus",
    ),
    "no gpu toleration": ("workers", lambda o: _spec(o, "worker").pop("tolerations"), "taint"),
    "eval runs behind training": (
        "workers",
        lambda o: _container(o, "evals", "worker")["command"].__setitem__(3, "tunery.evals,tunery.training"),
        "eval runs need a worker of their own",
    ),
    "inference reaches the database": (
        "network",
        lambda o: _template_labels(o, "inference").update({"tunery.dev/database-client": "true"}),
        "inference",
    ),
    "no database egress rule": (
        "network",
        lambda o: _drop(o, "NetworkPolicy", "tunery-database-egress"),
        "outside the cluster",
    ),
    "no default deny": ("network", lambda o: _drop(o, "NetworkPolicy", "tunery-default-deny"), "restricts"),
    "misspelt setting": (
        "config",
        lambda o: _api(o)["env"].append({"name": "TUNERY_API_WORKER", "value": "2"}),
        "TUNERY_API_WORKER",
    ),
    "hpa on a missing deployment": (
        "config",
        lambda o: named(o, "HorizontalPodAutoscaler", "tunery-api")["spec"]["scaleTargetRef"].update(
            name="api"
        ),
        "scales no Deployment",
    ),
    "hpa without cpu request": (
        "config",
        lambda o: _api(o)["resources"]["requests"].pop("cpu"),
        "requests no CPU",
    ),
    "service on a missing port": (
        "config",
        lambda o: named(o, "Service", "tunery-inference")["spec"]["ports"][0].update(targetPort="grpc"),
        "targetPort",
    ),
    "inference without the bucket": (
        "config",
        lambda o: _template_labels(o, "inference").pop("tunery.dev/storage-client"),
        "bucket",
    ),
    "keys leak to workers": (
        "config",
        lambda o: _worker(o)["envFrom"].append({"secretRef": {"name": "tunery-api-keys"}}),
        "API keys",
    ),
}


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_check_catches_fault(overlay: str, fault: str) -> None:
    check, make, named_in_problem = FAULTS[fault]
    objects = render(overlay)
    make(objects)
    problems = CHECKS[check](objects)
    assert problems, f"the {check} check missed: {fault}"
    assert any(named_in_problem in problem for problem in problems), problems


def test_trial_database_is_closed_to_the_inference_server() -> None:
    objects = render("trial")
    postgres = next(w for w in workloads(objects) if w.component == "postgres")
    inference = next(w for w in workloads(objects) if w.component == "inference")
    api = next(w for w in workloads(objects) if w.component == "api")
    assert network.may_reach_pod(objects, api.labels, postgres.labels, 5432)
    assert not network.may_reach_pod(objects, inference.labels, postgres.labels, 5432)
    objects.remove(named(objects, "NetworkPolicy", "tunery-postgres-ingress"))
    assert network.may_reach_pod(objects, inference.labels, postgres.labels, 5432) is False, (
        "the default deny still closes it"
    )
    assert not network.may_reach_pod(objects, api.labels, postgres.labels, 5432)

"""deploy/kuberay/: the RayCluster (a CRD, so its fields are checked here, its pod templates against
the Kubernetes schemas) and the shared claim parse, and keep the promises its README makes."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.checks import KUBERNETES_VERSIONS
from tests.deploy.manifests import ROOT

KUBERAY = ROOT / "deploy" / "kuberay"


def load(name: str) -> dict[str, Any]:
    (document,) = [doc for doc in yaml.safe_load_all((KUBERAY / name).read_text()) if doc]
    return document


def pod_templates(cluster: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = cluster["spec"]
    templates = {"head": spec["headGroupSpec"]["template"]}
    templates.update({group["groupName"]: group["template"] for group in spec["workerGroupSpecs"]})
    return templates


@pytest.fixture
def cluster() -> dict[str, Any]:
    return load("raycluster.yaml")


def test_the_raycluster_has_a_cpu_head_and_a_gpu_worker_group(cluster: dict[str, Any]) -> None:
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["kind"] == "RayCluster"
    assert cluster["metadata"]["namespace"] == "tunery"
    head = cluster["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"  # the Job Submission API
    assert head["rayStartParams"]["num-cpus"] == "0"  # no rank on the head
    head_container = head["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head_container["resources"]["limits"]
    assert 8265 in [port["containerPort"] for port in head_container["ports"]]
    (gpu,) = cluster["spec"]["workerGroupSpecs"]
    assert gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    resources = gpu["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]


def test_the_cluster_runs_the_ray_version_of_the_cluster_extra(cluster: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (ray,) = [pin for pin in project["project"]["optional-dependencies"]["cluster"] if pin.startswith("ray")]
    series = re.search(r"==(\d+\.\d+)", ray)
    assert series and cluster["spec"]["rayVersion"].startswith(series.group(1) + ".")


def test_every_node_runs_the_worker_image_with_the_shared_data_and_models(cluster: dict[str, Any]) -> None:
    claim = load("shared-data.yaml")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, template in pod_templates(cluster).items():
        spec = template["spec"]
        (container,) = spec["containers"]
        assert container["image"] == "tunery/worker", name
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        claims = {
            volume["name"]: volume["persistentVolumeClaim"]["claimName"]
            for volume in spec["volumes"]
            if "persistentVolumeClaim" in volume
        }
        # The driving worker's TUNERY_DATA_DIR and model store, at the same paths.
        assert claims[mounts["/data"]] == claim["metadata"]["name"], name
        assert claims[mounts["/models"]] == "tunery-models", name
        assert spec["securityContext"]["runAsNonRoot"] is True, name


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_pod_templates_and_the_claim_validate(cluster: dict[str, Any], version: str) -> None:
    for name, template in pod_templates(cluster).items():
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"tunery-ray-{name}"}, **template}
        kubernetes_validate.validate(pod, version, strict=True)
    kubernetes_validate.validate(load("shared-data.yaml"), version, strict=True)

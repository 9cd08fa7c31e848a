"""The Kubernetes manifests of deploy/kubernetes/, rendered as `kubectl apply -k` would apply them.

Rendering is `kubectl kustomize` (kustomize v5: kubectl 1.27 or newer); nothing reaches a cluster.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.parent.name for path in (KUBERNETES / "overlays").glob("*/kustomization.yaml"))
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod")

Manifest = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is needed to render deploy/kubernetes/ (.ci/run installs it)")
    return found


def render_directory(directory: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def _rendered(overlay: str) -> tuple[Manifest, ...]:
    return tuple(render_directory(KUBERNETES / "overlays" / overlay))


def render(overlay: str) -> list[Manifest]:
    """The overlay's objects (a fresh copy: a test may change them)."""
    import copy

    return copy.deepcopy(list(_rendered(overlay)))


@dataclass
class Workload:
    """An object that makes pods, with its pod template."""

    kind: str
    name: str
    labels: dict[str, str]
    spec: dict[str, Any]  # the pod spec

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.spec.get("initContainers", [])) + list(self.spec["containers"])

    @property
    def component(self) -> str:
        return self.labels.get("app.kubernetes.io/component", "")

    def container(self, name: str) -> dict[str, Any]:
        (found,) = [c for c in self.containers if c["name"] == name]
        return found


def workloads(objects: list[Manifest]) -> Iterator[Workload]:
    for obj in objects:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        if obj["kind"] == "Pod":
            template = obj
        elif obj["kind"] == "CronJob":
            template = obj["spec"]["jobTemplate"]["spec"]["template"]
        else:
            template = obj["spec"]["template"]
        labels = template.get("metadata", {}).get("labels", {})
        yield Workload(obj["kind"], obj["metadata"]["name"], labels, template["spec"])


def objects_of(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = [obj for obj in objects_of(objects, kind) if obj["metadata"]["name"] == name]
    return found


def image_tag(image: str) -> str | None:
    """The tag of `registry/name:tag` (None without one; a registry's port is no tag)."""
    last = image.rsplit("/", 1)[-1].split("@", 1)[0]
    return last.split(":", 1)[1] if ":" in last else None


def is_tunery_image(image: str) -> bool:
    return re.search(r"(^|/)tunery/(api|worker|inference)(:|@|$)", image) is not None

"""The API image stays small without a Docker engine to measure it: the requirement set its
Dockerfile target installs (pyproject's build requirements and dependencies, no extra) is resolved
through the installed distributions' metadata, and must hold no torch or CUDA, and its installed
size must stay within the budget deploy/README.md states."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement

from tests.deploy.manifests import ROOT

# The API target's site-packages; with python:3.11-slim (about 130 MB) and Debian's wordnet-base
# (28 MB) under it, the image stays under 400 MB.
SITE_PACKAGES_BUDGET_MB = 250
IMAGE_BUDGET_MB = 400
# What only training and inference need: none of it may reach the API image.
TRAINING_ONLY = re.compile(
    r"^(torch|torchvision|triton|nvidia-.*|transformers|peft|trl|bitsandbytes|accelerate|safetensors|tokenizers)$"
)


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement).lower()


def closure(requirements: list[str]) -> set[str]:
    """Every distribution installing `requirements` brings in, as installed here (Linux, CPython 3.11)."""
    found: dict[str, set[str]] = {}
    pending = [Requirement(requirement) for requirement in requirements]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = _name(requirement.name)
        if name in found and set(requirement.extras) <= found[name]:
            continue
        extras = found.setdefault(name, set())
        extras |= set(requirement.extras)
        for line in metadata.distribution(name).requires or []:
            dependency = Requirement(line)
            marker = dependency.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras | {""}):
                dependency.marker = None
                pending.append(dependency)
    return set(found)


def api_requirements() -> list[str]:
    """What the Dockerfile's api target installs (its RUN reads these two lists of pyproject)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(project["build-system"]["requires"]) + list(project["project"]["dependencies"])


def installed_megabytes(distributions: set[str]) -> float:
    return sum(file.size or 0 for name in distributions for file in metadata.files(name) or []) / 1e6


def test_the_api_image_installs_no_training_packages() -> None:
    assert sorted(name for name in closure(api_requirements()) if TRAINING_ONLY.match(name)) == []


def test_the_check_finds_torch_behind_a_training_dependency() -> None:
    assert "torch" in closure(["peft"])


def test_the_api_image_keeps_its_size_budget() -> None:
    size = installed_megabytes(closure(api_requirements()))
    assert 20 < size <= SITE_PACKAGES_BUDGET_MB, f"the API's packages take {size:.0f} MB"


def test_the_budget_is_the_one_the_deploy_readme_states() -> None:
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert f"{SITE_PACKAGES_BUDGET_MB} MB of Python packages" in readme
    assert f"under {IMAGE_BUDGET_MB} MB" in readme

"""Readers for the deployment files (docker-compose.yml, the Dockerfile, .dockerignore) that the
tests of tests/deploy/test_compose_file.py and test_dockerfile.py share."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import _parser
from api.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# What `tunery migrate` and `tunery api`/`worker` need inside the image (see api/migrations.py).
NEEDED_IN_IMAGE = ["pyproject.toml", "alembic.ini", "api/cli.py", "worker/tasks.py", "migrations/env.py"]


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _built_here() -> list[str]:
    """The services that run one of our images (built from the Dockerfile)."""
    return sorted(name for name, service in _services().items() if "build" in service)


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def _parse_tunery(argv: list[str]) -> Any:
    """The namespace `tunery` would run with; fails the test where the CLI would refuse the args."""
    assert argv[:1] == ["tunery"], f"{argv} does not run the tunery console script"
    try:
        args = _parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"`{shlex.join(argv)}` is not a command `tunery` accepts")
    assert hasattr(args, "run"), f"`{shlex.join(argv)}` names a command group, not a command"
    return args


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _named_volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{volume name: path in the container} for the service's named volumes."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source and not source.startswith((".", "/", "~")):
            mounts[source] = target
    return mounts


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """{service: condition}; the short list form means service_started."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


@dataclass
class Stage:
    name: str
    parent: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _stages() -> dict[str, Stage]:
    """The Dockerfile's stages, each with its (INSTRUCTION, arguments) in order; comment lines are
    dropped and continued lines joined, as Docker's parser does."""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line, pending = (pending + raw).strip(), ""
        if not line:
            continue
        word, _, arguments = line.partition(" ")
        word, arguments = word.upper(), arguments.strip()
        if word == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", arguments, re.IGNORECASE)
            assert match, f"every stage is named: FROM {arguments}"
            current = stages[match[2]] = Stage(name=match[2], parent=match[1])
        else:
            assert current is not None, f"{word} before the first FROM"
            current.instructions.append((word, arguments))
    return stages


def _target(name: str) -> list[tuple[str, str]]:
    """Every instruction that building `--target name` runs, from the first stage down."""
    stages = _stages()
    chain: list[Stage] = []
    stage: Stage | None = stages[name]
    while stage is not None:
        chain.insert(0, stage)
        stage = stages.get(stage.parent)
    return [instruction for stage in chain for instruction in stage.instructions]


def _runs(target: str) -> list[str]:
    return [arguments for word, arguments in _target(target) if word == "RUN"]


def _env(target: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, arguments in _target(target):
        if word == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def _last(target: str, instruction: str) -> str | None:
    found = [arguments for word, arguments in _target(target) if word == instruction]
    return found[-1] if found else None


def _exec_form(arguments: str) -> list[str]:
    return yaml.safe_load(arguments)  # a JSON array, which YAML reads too


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(named volume, path in the container, read-only) for each named volume the service mounts."""
    found = []
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        if not parts[0].startswith((".", "/", "~")):
            found.append((parts[0], parts[1], parts[2:] == ["ro"]))
    return found


def _inference_port() -> str:
    """The port the compose file's inference service listens on (its setting, else the default)."""
    default = Settings.model_fields["inference_port"].default
    return _environment(_services()["inference"]).get("TUNERY_INFERENCE_PORT", str(default))


def _compose_cli() -> list[str] | None:
    """`docker compose` (the plugin) or a standalone `docker-compose` of v2, whichever is here."""
    if shutil.which("docker"):
        found = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if found.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        found = subprocess.run(["docker-compose", "version"], capture_output=True, text=True)
        if found.returncode == 0 and re.search(r"v2\.", found.stdout):
            return ["docker-compose"]
    return None

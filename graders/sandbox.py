"""Python graders run untrusted code: each call in a child process that can harm nothing.

The child runs as an unprivileged user (`tunery-grader`, made on first use when Tunery runs as
root), in a network namespace of its own with only a downed loopback (no network), in a mount
namespace where each hidden directory (Tunery's data directory) is covered by an empty tmpfs, in an
empty temporary working directory, with an empty environment, under CPU-time, address-space,
process-count and file-size limits, and killed at a wall-clock limit. It gets its sample and item on
stdin and hands back one result line marked with a token only the parent knows.

Without root (a developer's own account), namespaces and the user switch are not available: the
sandbox refuses to run rather than run the code unconfined, unless `allow_unconfined` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GRADER_USER = "tunery-grader"
_RUNNER = Path(__file__).with_name("sandbox_runner.py")


class SandboxError(RuntimeError):
    """The grader's code failed, overran a limit, or could not be run; the message says which."""

    def __init__(self, message: str, *, kind: str = "runtime") -> None:
        super().__init__(message)
        self.kind = kind
        """"runtime": the grader's own fault (an exception, a limit); "server": Tunery's."""


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30
    wall_seconds: float = 20.0
    processes: int = 64
    file_bytes: int = 16 << 20
    output_bytes: int = 1 << 20


@dataclass(frozen=True)
class Sandbox:
    limits: Limits = field(default_factory=Limits)
    hidden: Sequence[Path] = ()
    """Directories the code must not see (Tunery's data directory): covered by an empty tmpfs."""
    allow_unconfined: bool = False

    def run(self, source: str, sample: dict[str, Any], item: dict[str, Any]) -> float:
        token = secrets.token_hex(16)
        request = json.dumps({"source": source, "sample": sample, "item": item, "token": token})
        confined = os.geteuid() == 0
        if not confined and not self.allow_unconfined:
            raise SandboxError(
                "python graders need Tunery to run as root, to confine them (their own user, no network)",
                kind="server",
            )
        workdir = Path(tempfile.mkdtemp(prefix="tunery-grader-"))
        try:
            command = [sys.executable, "-I", str(_RUNNER)]
            if confined:
                user = grader_user()
                os.chown(workdir, user.pw_uid, user.pw_gid)
                command = self._confine(command, user)
            workdir.chmod(0o700)
            return self._call(command, request, token, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _confine(self, command: list[str], user: pwd.struct_passwd) -> list[str]:
        # bash -c SCRIPT python HIDDEN... ARGS...: each hidden directory is covered in the new mount
        # namespace, then the user is dropped for good before the interpreter starts.
        hidden = [str(path) for path in self.hidden if Path(path).is_dir()]
        mounts = [f'mount -t tmpfs -o size=1m,mode=000 tmpfs "${i + 1}" && ' for i in range(len(hidden))]
        script = "".join(mounts) + (
            f"exec setpriv --reuid={user.pw_uid} --regid={user.pw_gid} --clear-groups --no-new-privs "
            f'--inh-caps=-all --bounding-set=-all -- "$0" "${{@:{len(hidden) + 1}}}"'
        )
        return [
            "unshare",
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--",
            "bash",
            "-c",
            script,
            command[0],
            *hidden,
            *command[1:],
        ]

    def _call(self, command: list[str], request: str, token: str, workdir: Path) -> float:
        limits = self.limits

        def set_limits() -> None:
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir)},
            start_new_session=True,
            preexec_fn=set_limits,
        )
        try:
            out, err = process.communicate(request.encode(), timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            _kill(process)
            raise SandboxError(
                f"the python grader ran past its wall-clock limit of {limits.wall_seconds:g} s"
            ) from None
        finally:
            _kill(process)
        return _result(out[-limits.output_bytes :], err, token, process.returncode, limits)


def _result(out: bytes, err: bytes, token: str, returncode: int, limits: Limits) -> float:
    for line in reversed(out.decode(errors="replace").splitlines()):
        if line.startswith(token):
            answer = json.loads(line[len(token) :])
            if "error" in answer:
                raise SandboxError(str(answer["error"]))
            return float(answer["reward"])
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise SandboxError(f"the python grader ran past its CPU-time limit of {limits.cpu_seconds} s")
    tail = err.decode(errors="replace").strip().splitlines()[-3:]
    raise SandboxError(f"the python grader exited ({returncode}) without a reward: {' '.join(tail)[-500:]}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def grader_user() -> pwd.struct_passwd:
    """The unprivileged account graders run as, made (no home, no shell) if this machine lacks it."""
    try:
        return pwd.getpwnam(GRADER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                GRADER_USER,
            ],
            check=False,
            capture_output=True,
        )
    # Another process may be making it at the same moment (useradd then fails on its lock).
    for _ in range(50):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(GRADER_USER)
        time.sleep(0.1)
    return pwd.getpwnam(GRADER_USER)

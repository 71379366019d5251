"""The stack the integration tests run against: native processes (default here) or docker compose.

Both give the tests the same thing: a ``Pipeline`` with the DESIGN.md settings as environment variables,
so every test talks to PostgreSQL, Kafka and Connect the way a user's command would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.config import PostgresSettings, StackConfig

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Pipeline:
    backend: str
    env: dict[str, str]

    @property
    def bootstrap(self) -> str:
        return self.env["KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def connect_url(self) -> str:
        return self.env["CONNECT_URL"]

    @property
    def postgres(self) -> PostgresSettings:
        """PostgreSQL as the table owner: what ``probes`` take for the database."""
        return PostgresSettings.from_env(self.env)

    @property
    def config(self) -> StackConfig:
        """The stack's settings, as ``python -m stack`` run with this pipeline's environment reads them."""
        return StackConfig.from_env(self.env)

    def pg_kwargs(self, user: str | None = None, password: str | None = None) -> dict:
        """``psycopg2.connect`` keyword arguments: the owner's, or another role's login."""
        logins = {"user": user, "password": password}
        return self.postgres.connect_kwargs(**{name: value for name, value in logins.items() if value})

    def run(self, *args: str, timeout: float = 300, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        """Run ``python -m <args>`` from the repo root with this pipeline's settings."""
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str) -> subprocess.Popen:
        """Start ``python -m <args>`` like ``run`` without waiting; stdout and stderr are text pipes."""
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def stop(process: subprocess.Popen, signum: int = signal.SIGINT, timeout: float = 60, stdout_read: bool = False):
    """Send ``signum`` (Ctrl-C by default) to a process ``Pipeline.start`` made and wait for it to exit, draining
    its pipes (``stdout_read``: a thread of the test reads stdout already); returns ``(stdout, stderr)``. A
    process still running ``timeout`` seconds later is killed, not left to later tests, and the test fails
    with the end of its stderr."""
    err: list[str] = []
    drain = threading.Thread(target=lambda: err.append(process.stderr.read()), daemon=True)
    if stdout_read:
        drain.start()
    process.send_signal(signum)
    try:
        if stdout_read:
            process.wait(timeout=timeout)
            drain.join(timeout=10)
            return "", "".join(err)
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        if stdout_read:
            process.wait()
            drain.join(timeout=10)
            tail = "".join(err)
        else:
            tail = process.communicate()[1] or ""
        name = signal.Signals(signum).name
        who = " ".join(process.args[2:4])
        pytest.fail(f"{who} still ran {timeout:g} s after {name} (killed); stderr: {tail[-2000:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def isolated_env(home: Path) -> dict[str, str]:
    """Settings for a stack that is not running: its own STACK_HOME, free ports, and nothing of ours inherited."""
    return {
        "PATH": "/usr/bin:/bin",
        "STACK_HOME": str(home),
        "PGPORT": str(free_port()),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "CONNECT_URL": f"http://127.0.0.1:{free_port()}",
    }


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_backend() -> str:
    """``PIPELINE_BACKEND`` when set (docker|native), else docker when an engine answers, else native."""
    forced = os.environ.get("PIPELINE_BACKEND", "").strip().lower()
    if forced:
        if forced not in ("docker", "native"):
            raise RuntimeError(f"PIPELINE_BACKEND={forced!r}: expected 'docker' or 'native'")
        return forced
    return "docker" if docker_answers() else "native"


def native_env() -> tuple[dict[str, str], Path]:
    """Settings for an isolated native stack: a temporary STACK_HOME and free ports."""
    home = Path(tempfile.mkdtemp(prefix="mnist-stack-"))
    home.chmod(0o755)
    env = {
        **os.environ,
        "STACK_HOME": str(home),
        "PGHOST": "127.0.0.1",
        "PGPORT": str(free_port()),
        "PGUSER": "postgres",
        "PGPASSWORD": "postgres",
        "PGDATABASE": "postgres",
        "DEBEZIUM_PGPASSWORD": "debezium-test-secret",
        "PREDICTIONS_SINK_PGPASSWORD": "predictions-test-secret",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "CONNECT_URL": f"http://127.0.0.1:{free_port()}",
    }
    return env, home

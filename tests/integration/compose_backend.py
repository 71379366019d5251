"""The docker backend: the compose file through testcontainers, with the same settings the native stack uses.

Not run on our machines (no Docker engine there); chosen when a Docker engine answers or with
PIPELINE_BACKEND=docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from stack.config import DEFAULTS, StackConfig
from stack.processes import wait_until
from tests.integration.backend import ROOT, Pipeline


@contextmanager
def compose_pipeline() -> Iterator[Pipeline]:
    from testcontainers.compose import DockerCompose

    from stack import connect, kafka

    env = {**os.environ, **{k: v for k, v in DEFAULTS.items() if k != "KAFKA_CONTROLLER_PORT"}}
    compose = DockerCompose(str(ROOT), compose_file_name="docker-compose.yml", build=True, wait=True)
    with compose:
        cfg = StackConfig.from_env(env)
        if not wait_until(lambda: connect.is_running(connect.connector_status(cfg)), 180, 1.0):
            raise RuntimeError(f"connector not RUNNING in docker compose: {connect.connector_status(cfg)}")
        kafka.ensure_topics(cfg)
        yield Pipeline("docker", env)

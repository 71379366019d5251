"""The capture engines the integration tests run against: what differs between Kafka Connect running the
Debezium connector (``STACK_ENGINE=connect``, the session's ``pipeline``) and Debezium Server
(``STACK_ENGINE=server``, a second native stack of its own), so one test asserts the same thing of both.

The ``capture`` fixture (tests/integration/conftest.py) hands a test a ``Capture`` for each engine.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack import connect, server
from stack.config import REPO_ROOT
from stack.processes import StepError
from tests.integration.support.backend import Pipeline

ENGINES = ("connect", "server")

try:
    server.java_home()
    NO_JAVA = ""
except StepError as error:
    #: Why the server engine cannot run here (no JDK 21+), or "" when it can.
    NO_JAVA = str(error)


@dataclass(frozen=True)
class Capture:
    """One stack and the engine capturing PostgreSQL's changes into Kafka in it."""

    engine: str
    stack: Pipeline

    @property
    def exactly_once(self) -> bool:
        """What the engine promises a read_committed reader: Connect's exactly-once source support (KIP-618) with
        DELIVERY=exactly-once; Debezium Server's Kafka sink has no transactions, so it delivers at least once."""
        return self.engine == "connect" and self.stack.config.exactly_once

    @property
    def delivery(self) -> str:
        return "exactly-once" if self.exactly_once else "at-least-once"

    def pid(self) -> int | None:
        """The capture JVM's pid: the Connect worker or Debezium Server."""
        cfg = self.stack.config
        return connect.running_pid(cfg) if self.engine == "connect" else server.SERVICE.running_pid(cfg)

    def log_file(self) -> Path:
        cfg = self.stack.config
        return connect.log_file(cfg) if self.engine == "connect" else server.SERVICE.log_file(cfg)

    def stop(self) -> bool:
        """Stop the capture JVM cleanly (SIGTERM); True when it was running."""
        cfg = self.stack.config
        return connect.stop(cfg) if self.engine == "connect" else server.SERVICE.stop(cfg)

    @property
    def started_line(self) -> str:
        """What ``python -m stack up`` prints when it (re)started the capture JVM."""
        return "connect    started" if self.engine == "connect" else "server     debezium-server started"

    def state(self) -> str:
        """``RUNNING``-style one-liner of the capture: Connect's connector status, Debezium Server's health."""
        cfg = self.stack.config
        if self.engine == "connect":
            return connect.describe(connect.CONNECTOR_NAME, connect.connector_status(cfg))
        return server.describe(server.health(cfg.server_port), cfg.server_port)

    def is_running(self) -> bool:
        """The connector and its task RUNNING; Debezium Server's health UP and its slot streaming."""
        cfg = self.stack.config
        if self.engine == "connect":
            return connect.is_running(connect.connector_status(cfg))
        return server.is_up(server.health(cfg.server_port)) and server.slot_active(cfg)

    @property
    def slot(self) -> str:
        cfg = self.stack.config
        return connect.connector_config(cfg)["slot.name"] if self.engine == "connect" else server.SLOT_NAME

    def source_setting(self, name: str) -> str | None:
        """A Debezium source setting as the running engine was given it: the connector's configuration as Connect
        holds it (REST), or Debezium Server's ``debezium.source.<name>`` in the properties file it was started with."""
        cfg = self.stack.config
        if self.engine == "connect":
            status, registered = connect.rest(cfg, "GET", f"/connectors/{connect.CONNECTOR_NAME}/config")
            assert status == 200, registered
            return registered.get(name)
        lines = server.SERVICE.config_file(cfg).read_text().splitlines()
        found = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
        return found.get(f"debezium.source.{name}")

    @property
    def password_reference(self) -> str:
        """How the engine's configuration names the connector's password: a reference its JVM resolves from its
        environment (Connect's EnvVarConfigProvider, Quarkus' configuration), never the password itself."""
        return "${env:DEBEZIUM_PGPASSWORD}" if self.engine == "connect" else "${DEBEZIUM_PGPASSWORD}"


def seed_assembled(home: Path) -> None:
    """Hard-link the repository's assembled parts (``python -m stack assemble --engine server``) into the new
    STACK_HOME when they are there, so the server stack does not unpack 440 MB again; ``up`` re-assembles what is
    stale."""
    source = REPO_ROOT / ".stack"
    parts = ["lib", "plugins", "debezium-server-dist"]
    if not all((source / part).is_dir() for part in parts) or not (source / "assembled.json").is_file():
        return
    for part in parts:
        subprocess.run(["cp", "-al", str(source / part), str(home / part)], check=True)
    shutil.copy2(source / "assembled.json", home / "assembled.json")

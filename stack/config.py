"""Connection settings shared by every command, read from the environment (DESIGN.md names)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULTS = {
    "PGHOST": "127.0.0.1",
    "PGPORT": "5432",
    "PGUSER": "postgres",
    "PGPASSWORD": "postgres",
    "PGDATABASE": "postgres",
    "DEBEZIUM_PGPASSWORD": "debezium",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "KAFKA_CONTROLLER_PORT": "9093",
    "CONNECT_URL": "http://127.0.0.1:8083",
}

#: The role Debezium connects as; created by postgres/02-connector-role.sql.
CONNECTOR_ROLE = "debezium"
CONNECTOR_NAME = "mnist-connector"


class ConfigError(Exception):
    """A setting has a value that cannot be used; the message names the variable."""


def _port(name: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{name}={value!r} is not a port number (1-65535)")
    return port


@dataclass(frozen=True)
class StackConfig:
    """Where each service listens and how to log in; ``from_env`` fills it from DESIGN.md's variables."""

    home: Path
    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str
    pg_database: str
    connector_password: str
    kafka_host: str
    kafka_port: int
    controller_port: int
    connect_host: str
    connect_port: int
    #: PostgreSQL as Connect reaches it (CONNECT_PGHOST/CONNECT_PGPORT, default PGHOST/PGPORT): the connector's
    #: database.hostname/port. Differs when Connect runs in a container (docker compose: postgres:5432).
    connect_pg_host: str
    connect_pg_port: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        """Read the settings from ``env`` (default ``os.environ``), falling back to DESIGN.md's defaults."""
        env = os.environ if env is None else env

        def get(name: str) -> str:
            return env.get(name) or DEFAULTS[name]

        bootstrap = get("KAFKA_BOOTSTRAP_SERVERS").split(",")[0].strip()
        kafka_host, _, kafka_port = bootstrap.rpartition(":")
        if not kafka_host:
            raise ConfigError(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap!r} is not host:port")
        connect = urlparse(get("CONNECT_URL"))
        if connect.scheme != "http" or not connect.hostname or not connect.port:
            raise ConfigError(f"CONNECT_URL={get('CONNECT_URL')!r} is not http://host:port")
        return cls(
            home=Path(env.get("STACK_HOME") or REPO_ROOT / ".stack").resolve(),
            pg_host=get("PGHOST"),
            pg_port=_port("PGPORT", get("PGPORT")),
            pg_user=get("PGUSER"),
            pg_password=get("PGPASSWORD"),
            pg_database=get("PGDATABASE"),
            connector_password=get("DEBEZIUM_PGPASSWORD"),
            kafka_host=kafka_host,
            kafka_port=_port("KAFKA_BOOTSTRAP_SERVERS", kafka_port),
            controller_port=_port("KAFKA_CONTROLLER_PORT", get("KAFKA_CONTROLLER_PORT")),
            connect_host=connect.hostname,
            connect_port=connect.port,
            connect_pg_host=env.get("CONNECT_PGHOST") or get("PGHOST"),
            connect_pg_port=_port("CONNECT_PGPORT", env.get("CONNECT_PGPORT") or get("PGPORT")),
        )

    def pg_kwargs(self) -> dict[str, object]:
        """libpq connection settings of the table owner, for ``psycopg2.connect(**cfg.pg_kwargs())``."""
        return {
            "host": self.pg_host,
            "port": self.pg_port,
            "user": self.pg_user,
            "password": self.pg_password,
            "dbname": self.pg_database,
        }

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return f"http://{self.connect_host}:{self.connect_port}"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

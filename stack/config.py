"""The one settings module: every command, benchmark and test reads its PostgreSQL, Kafka and Connect settings
here (names in docs/design.md, Configuration).

Each group is a frozen dataclass built from the environment, with DEFAULTS written once below; a command's
flags override the environment (``add_flags`` adds them with help that names the variable behind each flag,
``from_args`` builds the settings). A value that cannot be used raises ``ConfigError`` naming the variable or
flag, for a one-line error.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from stack.contract import MNIST, Contract

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The talk's and the compose file's defaults, on 127.0.0.1 (docs/design.md).
DEFAULTS = {
    "PGHOST": "127.0.0.1",
    "PGPORT": "5432",
    "PGUSER": "postgres",
    "PGPASSWORD": "postgres",
    "PGDATABASE": "postgres",
    "DEBEZIUM_PGPASSWORD": "debezium",
    "PREDICTIONS_SINK_PGPASSWORD": "predictions",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "KAFKA_CONTROLLER_PORT": "9093",
    "CONNECT_URL": "http://127.0.0.1:8083",
    "TOPIC_PARTITIONS": "2",
    # How long the data topics keep a record (ms); -1: for ever, so training can always replay the whole table.
    "DATA_RETENTION_MS": "-1",
    "DELIVERY": "exactly-once",
    # The capture engine: Kafka Connect with the Debezium connector (default), or Debezium Server (opt-in).
    "STACK_ENGINE": "connect",
    # Debezium Server's HTTP port (its health endpoint), on 127.0.0.1; used only with STACK_ENGINE=server.
    "DEBEZIUM_SERVER_PORT": "8084",
    # TensorBoard (make dashboard), on 127.0.0.1.
    "TENSORBOARD_PORT": "6006",
}

#: DELIVERY's values: Connect's exactly-once source support with transactions (the default), or at-least-once
#: (no transactions: a crash of Connect sends up to a second of rows again), kept for comparison.
DELIVERY_MODES = ("exactly-once", "at-least-once")

#: The capture engines ``STACK_ENGINE`` chooses between (docs/design.md, Engines).
ENGINES = ("connect", "server")

#: The role Debezium connects as; created by postgres/02-connector-role.sql.
CONNECTOR_ROLE = "debezium"
#: The role Debezium's JDBC sinks write predictions as (postgres/04-predictions.sql).
SINK_ROLE = "predictions_sink"


class ConfigError(Exception):
    """A setting has a value that cannot be used; the message names the variable (or flag)."""


def _port(name: str, value: str | int) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{name}={value!r} is not a port number (1-65535)")
    return port


def _partitions(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise ConfigError(f"TOPIC_PARTITIONS={value!r} is not a number of partitions (1-64)")
    return int(value)


def _retention(value: str) -> int:
    """DATA_RETENTION_MS as Kafka's ``retention.ms`` takes it: -1 (never delete) or a positive number of ms.

    >>> _retention("-1"), _retention("604800000")
    (-1, 604800000)
    """
    try:
        retention = int(value)
    except ValueError:
        retention = 0
    if retention != -1 and retention <= 0:
        raise ConfigError(f"DATA_RETENTION_MS={value!r} is not -1 (keep for ever) or a positive number of ms")
    return retention


def _delivery(value: str) -> str:
    if value not in DELIVERY_MODES:
        raise ConfigError(f"DELIVERY={value!r}: expected {' or '.join(DELIVERY_MODES)}")
    return value


def _lookup(env: Mapping[str, str] | None):
    env = os.environ if env is None else env
    return lambda name: env.get(name) or DEFAULTS[name]


@dataclass(frozen=True)
class PostgresSettings:
    """How to reach PostgreSQL as the table owner (libpq's own variable names)."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> PostgresSettings:
        get = _lookup(env)
        values = {
            "host": get("PGHOST"),
            "port": get("PGPORT"),
            "user": get("PGUSER"),
            "password": get("PGPASSWORD"),
            "database": get("PGDATABASE"),
        }
        values.update({name: value for name, value in overrides.items() if value is not None})
        port_name = "--port" if overrides.get("port") is not None else "PGPORT"
        return cls(**{**values, "port": _port(port_name, values["port"])})

    def connect_kwargs(self, **overrides) -> dict[str, object]:
        """Keyword arguments for ``psycopg2.connect``; ``overrides`` (e.g. another user) win."""
        kwargs = {"host": self.host, "port": self.port, "user": self.user, "password": self.password}
        return {**kwargs, "dbname": self.database, **overrides}

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class KafkaSettings:
    """The brokers every client bootstraps from (a comma-separated list, as Kafka clients take it)."""

    bootstrap_servers: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, bootstrap_servers: str | None = None) -> KafkaSettings:
        servers = bootstrap_servers or _lookup(env)("KAFKA_BOOTSTRAP_SERVERS")
        name = "--bootstrap-servers" if bootstrap_servers else "KAFKA_BOOTSTRAP_SERVERS"
        for server in servers.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host:
                raise ConfigError(f"{name}={server.strip()!r} is not host:port")
            _port(name, port)
        return cls(servers)

    @property
    def first(self) -> tuple[str, int]:
        """Host and port of the first broker: the one the native stack runs.

        >>> KafkaSettings("127.0.0.1:9092,other:9094").first
        ('127.0.0.1', 9092)
        """
        host, _, port = self.bootstrap_servers.split(",")[0].strip().rpartition(":")
        return host, int(port)


@dataclass(frozen=True)
class ConnectSettings:
    """Kafka Connect's REST address."""

    url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConnectSettings:
        url = _lookup(env)("CONNECT_URL")
        parsed = urlparse(url)
        try:
            port = parsed.port
        except ValueError:
            port = None
        if parsed.scheme != "http" or not parsed.hostname or not port:
            raise ConfigError(f"CONNECT_URL={url!r} is not http://host:port")
        return cls(url.rstrip("/"))

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlparse(self.url).port or 0


# Command-line flags and the settings behind them: (group, flag, attribute, variable, help).
FLAGS = {
    "postgres": [
        ("--host", "host", "PGHOST", "PostgreSQL host"),
        ("--port", "port", "PGPORT", "PostgreSQL port"),
        ("--user", "user", "PGUSER", "PostgreSQL user, the table owner (password: env PGPASSWORD)"),
        ("--dbname", "database", "PGDATABASE", "database"),
    ],
    "kafka": [("--bootstrap-servers", "bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS", "Kafka brokers, host:port,...")],
}


def tensorboard_port(env: Mapping[str, str] | None = None) -> int:
    return _port("TENSORBOARD_PORT", _lookup(env)("TENSORBOARD_PORT"))


def add_flags(parser: argparse.ArgumentParser, *groups: str) -> None:
    """Add the flags of ``groups`` (``postgres``, ``kafka``); each help says ``[env NAME, default VALUE]``.

    Flags default to None, so the environment is read (and checked) only when the command runs: an invalid
    PGPORT does not break ``--help``.
    """
    for group in groups:
        for flag, attribute, variable, text in FLAGS[group]:
            parser.add_argument(
                flag,
                dest=f"{group}_{attribute}",
                metavar=flag.lstrip("-").upper().replace("-", "_"),
                help=f"{text} [env {variable}, default {DEFAULTS[variable]}]",
            )


def postgres_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> PostgresSettings:
    return PostgresSettings.from_env(
        env, **{attribute: getattr(args, f"postgres_{attribute}", None) for _, attribute, _, _ in FLAGS["postgres"]}
    )


def kafka_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> KafkaSettings:
    return KafkaSettings.from_env(env, getattr(args, "kafka_bootstrap_servers", None))


@dataclass(frozen=True)
class StackConfig:
    """Everything the native stack needs: the settings groups, where its state lives, and the stack's own ports."""

    home: Path
    postgres: PostgresSettings
    kafka: KafkaSettings
    connect: ConnectSettings
    connector_password: str
    controller_port: int
    #: The password of the JDBC sink's role, predictions_sink (postgres/04-predictions.sql).
    sink_password: str
    #: PostgreSQL as Connect reaches it (CONNECT_PGHOST/CONNECT_PGPORT, default PGHOST/PGPORT): the connector's
    #: database.hostname/port. Differs when Connect runs in a container (docker compose: postgres:5432).
    connect_pg_host: str
    connect_pg_port: int
    #: Partitions of the data topics (TOPIC_PARTITIONS): readers of one group share them.
    partitions: int = 2
    #: ``retention.ms`` of the topics training replays (DATA_RETENTION_MS): -1 keeps every record.
    data_retention_ms: int = -1
    delivery: str = "exactly-once"
    #: The capture engine (STACK_ENGINE): ``connect`` or ``server``; the JDBC sink runs in Connect either way.
    engine: str = "connect"
    #: Debezium Server's HTTP port on 127.0.0.1 (DEBEZIUM_SERVER_PORT), with STACK_ENGINE=server.
    server_port: int = 8084
    #: The names of tables, topics, headers and connectors (stack/contract.py).
    contract: Contract = MNIST

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackConfig:
        """Read the settings from ``env`` (default ``os.environ``), falling back to DEFAULTS."""
        env = os.environ if env is None else env
        get = _lookup(env)
        postgres = PostgresSettings.from_env(env)
        engine = get("STACK_ENGINE").strip().lower()
        if engine not in ENGINES:
            raise ConfigError(f"STACK_ENGINE={engine!r} is not one of {', '.join(ENGINES)}")
        return cls(
            home=Path(env.get("STACK_HOME") or REPO_ROOT / ".stack").resolve(),
            postgres=postgres,
            kafka=KafkaSettings.from_env(env),
            connect=ConnectSettings.from_env(env),
            connector_password=get("DEBEZIUM_PGPASSWORD"),
            controller_port=_port("KAFKA_CONTROLLER_PORT", get("KAFKA_CONTROLLER_PORT")),
            sink_password=get("PREDICTIONS_SINK_PGPASSWORD"),
            connect_pg_host=env.get("CONNECT_PGHOST") or postgres.host,
            connect_pg_port=_port("CONNECT_PGPORT", env.get("CONNECT_PGPORT") or postgres.port),
            partitions=_partitions(get("TOPIC_PARTITIONS")),
            data_retention_ms=_retention(get("DATA_RETENTION_MS")),
            delivery=_delivery(get("DELIVERY")),
            engine=engine,
            server_port=_port("DEBEZIUM_SERVER_PORT", get("DEBEZIUM_SERVER_PORT")),
        )

    @property
    def exactly_once(self) -> bool:
        return self.delivery == "exactly-once"

    # The flat names the stack's modules use.
    pg_host = property(lambda self: self.postgres.host)
    pg_port = property(lambda self: self.postgres.port)
    pg_user = property(lambda self: self.postgres.user)
    pg_password = property(lambda self: self.postgres.password)
    pg_database = property(lambda self: self.postgres.database)
    kafka_host = property(lambda self: self.kafka.first[0])
    kafka_port = property(lambda self: self.kafka.first[1])
    connect_host = property(lambda self: self.connect.host)
    connect_port = property(lambda self: self.connect.port)

    def pg_kwargs(self) -> dict[str, object]:
        """libpq connection settings of the table owner, for ``psycopg2.connect(**cfg.pg_kwargs())``."""
        return self.postgres.connect_kwargs()

    @property
    def kafka_bootstrap(self) -> str:
        """The broker the native stack runs (the first of KAFKA_BOOTSTRAP_SERVERS)."""
        return "{}:{}".format(*self.kafka.first)

    @property
    def connect_url(self) -> str:
        return f"http://{self.connect_host}:{self.connect_port}"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

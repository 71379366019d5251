"""A distributed Kafka Connect worker with the Debezium plugin and our transform, and its REST calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from stack.assembled import plugin_dir
from stack.config import CONNECTOR_NAME, REPO_ROOT, StackConfig
from stack.jvm_service import JvmService, jvm_env
from stack.processes import StepError

CONNECTOR_JSON = REPO_ROOT / "debezium" / "register-postgres.json"
SERVICE = JvmService(
    "connect",
    main_class="org.apache.kafka.connect.cli.ConnectDistributed",
    config_name="worker.properties",
    heap="-Xmx1g",
)
# The service's files and lifecycle under the names the rest of the code (tests, bench) calls.
log_file = SERVICE.log_file
pid_file = SERVICE.pid_file
running_pid = SERVICE.running_pid
stop = SERVICE.stop


def write_config(cfg: StackConfig) -> Path:
    return SERVICE.write_config(
        cfg,
        [
            f"bootstrap.servers={cfg.kafka_bootstrap}",
            "group.id=mnist-connect",
            f"listeners=http://{cfg.connect_host}:{cfg.connect_port}",
            f"rest.advertised.host.name={cfg.connect_host}",
            f"rest.advertised.port={cfg.connect_port}",
            # Worker defaults; the connector JSON sets its own converters (String, as in the talk).
            "key.converter=org.apache.kafka.connect.json.JsonConverter",
            "value.converter=org.apache.kafka.connect.json.JsonConverter",
            # Internal topics of a one-broker cluster: one replica; one partition each starts faster.
            "config.storage.topic=_connect-configs",
            "config.storage.replication.factor=1",
            "offset.storage.topic=_connect-offsets",
            "offset.storage.replication.factor=1",
            "offset.storage.partitions=1",
            "status.storage.topic=_connect-status",
            "status.storage.replication.factor=1",
            "status.storage.partitions=1",
            # Source offsets (the WAL position) are committed every second instead of every minute:
            # after a crash at most one second of rows is sent again, and the slot is confirmed sooner.
            "offset.flush.interval.ms=1000",
            # Low latency without giving up batching: wait at most 2 ms to fill a producer batch,
            # and let one batch hold a full Debezium poll of ~3 KB records.
            "producer.linger.ms=2",
            "producer.batch.size=1048576",
            # Nothing lost: the broker acknowledges every record; retries do not duplicate (idempotence).
            "producer.acks=all",
            "producer.enable.idempotence=true",
            # DELIVERY=exactly-once (KIP-618): the worker writes each poll's records and its source offsets in one
            # transaction, so a crash of Connect sends nothing twice to a read_committed reader. The connector
            # asks for it with exactly.once.support=required (connector_config).
            f"exactly.once.source.support={'enabled' if cfg.exactly_once else 'disabled'}",
            f"plugin.path={plugin_dir(cfg)}",
            # Plugins declare themselves in META-INF/services; this skips the slow classpath scan.
            "plugin.discovery=service_load",
            # Secrets stay in the environment: the connector JSON says ${env:DEBEZIUM_PGPASSWORD}.
            "config.providers=env",
            "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            # ...and only that variable resolves, whatever else the worker's environment holds (KIP-887).
            "config.providers.env.param.allowlist.pattern=^DEBEZIUM_PGPASSWORD$",
        ],
    )


def start(cfg: StackConfig) -> int:
    write_config(cfg)
    # Connect sees the connector's password and nothing else of ours: any local process may register a
    # connector, and ${env:...} would hand it whatever the worker's environment holds.
    return SERVICE.start(cfg, env=jvm_env({"DEBEZIUM_PGPASSWORD": cfg.connector_password}))


def rest(cfg: StackConfig, method: str, path: str, body: dict | None = None, timeout: float = 10.0):
    """Call Connect's REST API; returns ``(status, decoded JSON or None)``; raises OSError when unreachable."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        cfg.connect_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        payload, status = error.read(), error.code
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, None


def answers(cfg: StackConfig) -> bool:
    try:
        return rest(cfg, "GET", "/", timeout=3)[0] == 200
    except OSError:
        return False


def connector_config(cfg: StackConfig, path: Path = CONNECTOR_JSON) -> dict[str, str]:
    """The connector JSON's config with host, port and database from configuration (nothing else changed).

    Host and port are PostgreSQL as Connect reaches it (``CONNECT_PGHOST``/``CONNECT_PGPORT``, default
    ``PGHOST``/``PGPORT``), which is not the host's address when Connect runs in a container.
    """
    config = dict(json.loads(path.read_text())["config"])
    config["database.hostname"] = cfg.connect_pg_host
    config["database.port"] = str(cfg.connect_pg_port)
    config["database.dbname"] = cfg.pg_database
    if not cfg.exactly_once:  # DELIVERY=at-least-once: the worker has no exactly-once support to ask for
        config.pop("exactly.once.support", None)
        config.pop("transaction.boundary", None)
    return config


def register(cfg: StackConfig, name: str = CONNECTOR_NAME, config: dict[str, str] | None = None) -> None:
    """Create or update the connector (PUT is idempotent)."""
    config = config if config is not None else connector_config(cfg)
    try:
        status, body = rest(cfg, "PUT", f"/connectors/{name}/config", config, timeout=60)
    except OSError as error:
        # URLError (refused), ConnectionResetError, a timeout: the worker died or hung while we registered.
        reason = getattr(error, "reason", None) or error
        raise StepError(
            f"connector: registering {name} failed: Kafka Connect at {cfg.connect_url} did not answer ({reason}); "
            f"see {log_file(cfg)}"
        ) from None
    if status not in (200, 201):
        message = body.get("message") if isinstance(body, dict) else body
        raise StepError(f"connector: registering {name} failed (HTTP {status}): {message}")


def connector_status(cfg: StackConfig, name: str = CONNECTOR_NAME) -> dict | None:
    """Connect's status document for the connector, or None when it is unknown or Connect is down."""
    try:
        status, body = rest(cfg, "GET", f"/connectors/{name}/status", timeout=5)
    except OSError:
        return None
    return body if status == 200 else None


def is_running(status: dict | None) -> bool:
    """True when the connector and all of its tasks (at least one) are RUNNING."""
    if not status or status.get("connector", {}).get("state") != "RUNNING":
        return False
    tasks = status.get("tasks", [])
    return bool(tasks) and all(task.get("state") == "RUNNING" for task in tasks)


def failure(status: dict | None) -> str | None:
    """The first line of the error of a FAILED connector or task, else None."""
    for part in [status.get("connector", {}), *status.get("tasks", [])] if status else []:
        if part.get("state") == "FAILED":
            return (part.get("trace") or "FAILED").strip().splitlines()[0]
    return None


def restart_failed(cfg: StackConfig, name: str = CONNECTOR_NAME) -> None:
    """Restart the connector and its tasks that are FAILED (Connect's own call; RUNNING ones are left alone)."""
    rest(cfg, "POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=true", timeout=30)

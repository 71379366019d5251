"""A distributed Kafka Connect worker with the Debezium plugins (PostgreSQL source, JDBC sink) and our transform,
and its REST calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from stack.assembled import plugin_dir
from stack.config import StackConfig
from stack.contract import MNIST, SINK_JSON, SOURCE_JSON
from stack.errors import first_line
from stack.jvm_service import JvmService, jvm_env
from stack.processes import StepError

CONNECTOR_JSON = SOURCE_JSON
#: The Debezium source connector's name, the default of the REST calls below.
CONNECTOR_NAME = MNIST.connector
#: Debezium's JDBC sink: the predictions topic -> the predictions table, as predictions_sink.
SINK_NAME = MNIST.sink_connector
#: The only variables ${env:...} resolves in a connector config: each connector's own password.
SECRET_VARIABLES = ("DEBEZIUM_PGPASSWORD", "PREDICTIONS_SINK_PGPASSWORD")
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


def worker_properties(cfg: StackConfig, group_id: str = "mnist-connect", storage: str = "_connect") -> list[str]:
    """The worker's properties: REST on ``cfg``'s Connect address, exactly-once source support as ``cfg.delivery``
    says, cluster ``group_id`` with its internal topics ``<storage>-configs``, ``-offsets`` and ``-status``.

    The stack's worker takes the defaults; a benchmark runs a second worker of its own with other names.
    """
    return [
        f"bootstrap.servers={cfg.kafka_bootstrap}",
        f"group.id={group_id}",
        f"listeners=http://{cfg.connect_host}:{cfg.connect_port}",
        f"rest.advertised.host.name={cfg.connect_host}",
        f"rest.advertised.port={cfg.connect_port}",
        # Worker defaults; the connector JSON sets its own converters (String, as in the talk).
        "key.converter=org.apache.kafka.connect.json.JsonConverter",
        "value.converter=org.apache.kafka.connect.json.JsonConverter",
        # Internal topics of a one-broker cluster: one replica; one partition each starts faster.
        f"config.storage.topic={storage}-configs",
        "config.storage.replication.factor=1",
        f"offset.storage.topic={storage}-offsets",
        "offset.storage.replication.factor=1",
        "offset.storage.partitions=1",
        f"status.storage.topic={storage}-status",
        "status.storage.replication.factor=1",
        "status.storage.partitions=1",
        # Source offsets (the WAL position) are committed every second instead of every minute:
        # after a crash at most one second of rows is sent again, and the slot is confirmed sooner.
        "offset.flush.interval.ms=1000",
        # With exactly once, Debezium reads its source offsets back after each transaction (to confirm the WAL
        # position to PostgreSQL), and that read waits until a consumer of the offsets topic reached its end. A
        # fetch that finds nothing new waits fetch.max.wait.ms at the broker (500 ms by default), and the task
        # waits with it: a capture stall of about half a second every few thousand rows (bench.stall_bench). The
        # worker's consumers of its internal topics take the plain setting; the connector's own offsets reader
        # (and a sink task's consumer) the consumer.* one.
        "fetch.max.wait.ms=20",
        "consumer.fetch.max.wait.ms=20",
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
        # Secrets stay in the environment: the connector JSONs say ${env:DEBEZIUM_PGPASSWORD} and
        # ${env:PREDICTIONS_SINK_PGPASSWORD}.
        "config.providers=env",
        "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        # ...and only those variables resolve, whatever else the worker's environment holds (KIP-887).
        f"config.providers.env.param.allowlist.pattern=^({'|'.join(SECRET_VARIABLES)})$",
    ]


def write_config(cfg: StackConfig) -> Path:
    return SERVICE.write_config(cfg, worker_properties(cfg))


def worker_env(cfg: StackConfig) -> dict[str, str]:
    """The worker's environment: the JVM's own variables and the connectors' passwords, nothing else of ours."""
    # Any local process may register a connector, and ${env:...} would hand it whatever the environment holds.
    return jvm_env({"DEBEZIUM_PGPASSWORD": cfg.connector_password, "PREDICTIONS_SINK_PGPASSWORD": cfg.sink_password})


def start(cfg: StackConfig) -> int:
    write_config(cfg)
    return SERVICE.start(cfg, env=worker_env(cfg))


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


#: PartitionRouting's setting of how many partitions it spreads the rows over (``transforms.<name>.`` before it).
PARTITION_COUNT_SETTING = ".partition.topic.num"


def with_partitions(config: dict[str, str], partitions: int) -> dict[str, str]:
    """``config`` with every PartitionRouting transform's partition count set to ``partitions`` (TOPIC_PARTITIONS).

    The transform picks the partition itself (a hash of the row's id modulo the count), so the count must match the
    topics': a larger one names partitions that do not exist and fails the task, a smaller one leaves some idle.

    >>> with_partitions({"transforms.partition.partition.topic.num": "2", "tasks.max": "1"}, 4)
    {'transforms.partition.partition.topic.num': '4', 'tasks.max': '1'}
    """
    return {
        key: str(partitions) if key.startswith("transforms.") and key.endswith(PARTITION_COUNT_SETTING) else value
        for key, value in config.items()
    }


def connector_config(cfg: StackConfig, path: Path = CONNECTOR_JSON) -> dict[str, str]:
    """The connector JSON's config with host, port and database from configuration, and the partition count of
    TOPIC_PARTITIONS (nothing else changed): ``source_config`` of the file's config."""
    return source_config(cfg, json.loads(path.read_text())["config"])


def source_config(cfg: StackConfig, template: Mapping[str, str]) -> dict[str, str]:
    """A Debezium source connector's ``template`` config with host, port and database from configuration, and the
    partition count of TOPIC_PARTITIONS (nothing else changed).

    Host and port are PostgreSQL as Connect reaches it (``CONNECT_PGHOST``/``CONNECT_PGPORT``, default
    ``PGHOST``/``PGPORT``), which is not the host's address when Connect runs in a container.
    """
    config = with_partitions(dict(template), cfg.partitions)
    config["database.hostname"] = cfg.connect_pg_host
    config["database.port"] = str(cfg.connect_pg_port)
    config["database.dbname"] = cfg.pg_database
    if not cfg.exactly_once:  # DELIVERY=at-least-once: the worker has no exactly-once support to ask for
        config.pop("exactly.once.support", None)
        config.pop("transaction.boundary", None)
    return config


def sink_config(cfg: StackConfig, path: Path = SINK_JSON) -> dict[str, str]:
    """The JDBC sink JSON's config with the JDBC URL's host, port and database from configuration: ``jdbc_config``
    of the file's config."""
    return jdbc_config(cfg, json.loads(path.read_text())["config"])


def jdbc_config(cfg: StackConfig, template: Mapping[str, str]) -> dict[str, str]:
    """A JDBC sink's ``template`` config with the JDBC URL's host, port and database from configuration (as
    ``source_config``: PostgreSQL as Connect reaches it)."""
    config = dict(template)
    config["connection.url"] = f"jdbc:postgresql://{cfg.connect_pg_host}:{cfg.connect_pg_port}/{cfg.pg_database}"
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
            return first_line(part.get("trace") or "FAILED")
    return None


#: How much of the end of connect.log ``retrying`` reads: enough for several restart cycles, cheap to read.
LOG_TAIL_BYTES = 2 * 2**20


def retrying(cfg: StackConfig, name: str = CONNECTOR_NAME, topic_prefix: str = MNIST.topic_prefix) -> str | None:
    """The cause when the Debezium source connector ``name`` is retrying after an error, else None.

    Connect reports such a task RUNNING without a trace: Debezium catches a retriable error (a snapshot that
    cannot read a table, PostgreSQL gone), stops its change event source and starts it again after a back-off,
    for ever by default. The worker's log says so: the task thread's "Going to restart connector ... after a
    retriable exception" comes after the coordinator's last "Connected metrics set to 'true'" (the source
    connected and streaming). The cause is the innermost "Caused by:" line before the restart.
    """
    try:
        with open(log_file(cfg), "rb") as log:
            log.seek(max(0, log.seek(0, 2) - LOG_TAIL_BYTES))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    task, coordinator = f"[task-thread-{name}-", f"[debezium-postgresconnector-{topic_prefix}-change-event-source-"
    restarted = healthy = -1
    for index, line in enumerate(lines):
        if line.startswith(task) and "Going to restart connector after" in line:
            restarted = index
        elif line.startswith(coordinator) and "Connected metrics set to 'true'" in line:
            healthy = index
    if restarted <= healthy:
        return None
    causes = [line.strip() for line in lines[healthy + 1 : restarted] if line.startswith("Caused by:")]
    return (causes[-1].removeprefix("Caused by: ") if causes else "a retriable error")[:200]


def describe(name: str, status: dict | None) -> str:
    """``name STATE (task 0 STATE)`` and, for a FAILED part, the first line of its error.

    >>> failed = {"id": 0, "state": "FAILED", "trace": "x: y\\n  at z"}
    >>> describe("sink", {"connector": {"state": "RUNNING"}, "tasks": [failed]})
    'sink RUNNING (task 0 FAILED: x: y)'
    >>> describe("sink", None)
    'sink not registered'
    """
    state = (status or {}).get("connector", {}).get("state", "not registered")
    tasks = []
    for task in (status or {}).get("tasks", []):
        trace = (task.get("trace") or "").strip()
        tasks.append(f"task {task.get('id')} {task.get('state')}" + (f": {first_line(trace, 200)}" if trace else ""))
    return f"{name} {state}" + (f" ({', '.join(tasks)})" if tasks else "")


def restart_failed(cfg: StackConfig, name: str = CONNECTOR_NAME) -> None:
    """Restart the connector and its tasks that are FAILED (Connect's own call; RUNNING ones are left alone)."""
    rest(cfg, "POST", f"/connectors/{name}/restart?includeTasks=true&onlyFailed=true", timeout=30)

"""Debezium Server, the opt-in capture engine (``STACK_ENGINE=server``): the same PostgreSQL source, transforms
and record contract as the Kafka Connect connector, in a JVM of its own that writes to Kafka through its Kafka
sink.

Its ``application.properties`` is derived from ``debezium/register-postgres.json`` on every start, so that file
stays the one source of truth: each source setting under ``debezium.source.*``, each transform under
``debezium.transforms.*``; only what is Connect's own (converters, ``tasks.max``) is left out, and the slot is
Debezium Server's own (``mnist_server_slot``). Offsets (the WAL position) are kept in a file under
``$STACK_HOME/debezium-server``. The password stays in the environment: the file says
``${DEBEZIUM_PGPASSWORD}``, which Quarkus' configuration resolves from the JVM's environment.

Debezium Server needs Java 21 or newer; ``java_home`` finds one (JAVA_HOME, then /usr/lib/jvm).
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from stack import postgres
from stack.assembled import plugin_dir, server_dist_dir
from stack.config import StackConfig
from stack.connect import CONNECTOR_JSON, with_partitions
from stack.contract import MNIST
from stack.jvm_service import JvmService, jvm_env
from stack.processes import StepError

MAIN_CLASS = "io.debezium.server.Main"
#: Debezium Server's own slot: two engines on one slot would steal each other's changes.
SLOT_NAME = MNIST.server_slot
#: The Connect converters and worker settings that mean nothing to Debezium Server (its formats replace them).
CONNECT_ONLY = ("key.converter", "value.converter", "header.converter", "tasks.max", "name")
#: Connect's exactly-once source support (KIP-618) has no counterpart in Debezium Server: its Kafka sink is an
#: idempotent producer without transactions, so the server engine delivers at least once (docs/design.md).
CONNECT_EXACTLY_ONCE = ("exactly.once.support", "transaction.boundary")
#: The connector's producer overrides become the server's Kafka sink producer settings.
PRODUCER_OVERRIDE = "producer.override."
MINIMUM_JAVA = 21
#: What the Connect connector gets from ${env:NAME}; Debezium Server's configuration resolves ${NAME}.
ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")

SERVICE = JvmService(
    "debezium-server", main_class=MAIN_CLASS, config_name="config/application.properties", heap="-Xmx1g"
)


@dataclass(frozen=True)
class ServerRun:
    """One Debezium Server: its service (files, pid), HTTP port and what it overrides of the connector JSON.

    The stack runs ``STACK_SERVER``; a benchmark may run a second one beside the Connect connector, with its own
    service name, slot, topic prefix and tables; an added dataset runs one of its own whose ``source`` is its
    Connect registration's config (``stack.dataset_servers``). An empty ``source`` means the talk's connector JSON.
    """

    service: JvmService
    port: int
    overrides: tuple[tuple[str, str], ...] = ()
    source: tuple[tuple[str, str], ...] = ()


def stack_run(cfg: StackConfig) -> ServerRun:
    return ServerRun(SERVICE, cfg.server_port, (("slot.name", SLOT_NAME),))


def offsets_file(cfg: StackConfig, service: JvmService = SERVICE) -> Path:
    return service.home(cfg) / "offsets.dat"


def source_settings(
    cfg: StackConfig,
    overrides: dict[str, str] | None = None,
    path: Path = CONNECTOR_JSON,
    config: Mapping[str, str] | None = None,
) -> dict:
    """The connector JSON's settings (or those of ``config``, a connector config of a dataset's registration) as
    Debezium Server takes them: ``debezium.source.*`` and ``debezium.transforms.*``, PostgreSQL's address (as this
    host reaches it) and the partition count (TOPIC_PARTITIONS) from configuration, ``${env:X}`` as ``${X}``.

    >>> from stack.config import StackConfig
    >>> s = source_settings(StackConfig.from_env({}), {"slot.name": "mnist_server_slot"})
    >>> s["debezium.source.slot.name"], s["debezium.source.database.password"], s["debezium.transforms"]
    ('mnist_server_slot', '${DEBEZIUM_PGPASSWORD}', 'partition,unwrap,mnist')
    >>> "debezium.source.key.converter" in s, s["debezium.source.publication.autocreate.mode"]
    (False, 'disabled')
    """
    if config is None:
        config = json.loads(path.read_text())["config"]
    config = with_partitions(dict(config), cfg.partitions)
    config.update(
        {"database.hostname": cfg.pg_host, "database.port": str(cfg.pg_port), "database.dbname": cfg.pg_database}
    )
    config.update(overrides or {})
    settings = {}
    for key, value in config.items():
        if key in CONNECT_ONLY or key in CONNECT_EXACTLY_ONCE:
            continue
        if key.startswith(PRODUCER_OVERRIDE):  # the connector's producer settings hold for both engines
            settings[f"debezium.sink.kafka.producer.{key.removeprefix(PRODUCER_OVERRIDE)}"] = str(value)
            continue
        value = ENV_REFERENCE.sub(r"${\1}", str(value))
        if key == "transforms" or key.startswith("transforms."):
            settings[f"debezium.{key}"] = value
        else:
            settings[f"debezium.source.{key}"] = value
    return settings


def properties(cfg: StackConfig, run: ServerRun) -> list[str]:
    """``application.properties``: the derived source settings, file offsets, the Kafka sink, HTTP on 127.0.0.1."""
    settings = source_settings(cfg, dict(run.overrides), config=dict(run.source) or None)
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines += [
        # Offsets (the WAL position) in a file, flushed every second, as Connect's worker does (stack/connect.py).
        "debezium.source.offset.storage=org.apache.kafka.connect.storage.FileOffsetBackingStore",
        f"debezium.source.offset.storage.file.filename={offsets_file(cfg, run.service)}",
        "debezium.source.offset.flush.interval.ms=1000",
        # The record contract of the Connect connector's StringConverter: plain strings, key "7", value CSV.
        "debezium.format.key=simplestring",
        "debezium.format.value=simplestring",
        # Headers as Connect's SimpleHeaderConverter writes them (mnist.table "mnist_test", mnist.id "42"), not the
        # default JSON ("\"mnist_test\""): Debezium Server offers no string format for headers, but takes a
        # converter of ours ("clientprovided", its class under debezium.format.header.class).
        "debezium.format.header=clientprovided",
        "debezium.format.header.class=org.apache.kafka.connect.storage.SimpleHeaderConverter",
        "debezium.sink.type=kafka",
        f"debezium.sink.kafka.producer.bootstrap.servers={cfg.kafka_bootstrap}",
        "debezium.sink.kafka.producer.key.serializer=org.apache.kafka.common.serialization.StringSerializer",
        "debezium.sink.kafka.producer.value.serializer=org.apache.kafka.common.serialization.StringSerializer",
        # The producer settings of Connect's worker: nothing lost, no duplicates from retries, 2 ms batching.
        "debezium.sink.kafka.producer.acks=all",
        "debezium.sink.kafka.producer.enable.idempotence=true",
        "debezium.sink.kafka.producer.linger.ms=2",
        "debezium.sink.kafka.producer.batch.size=1048576",
        "quarkus.http.host=127.0.0.1",
        f"quarkus.http.port={run.port}",
        "quarkus.log.console.json=false",
    ]
    return lines


def java_version(java_home: Path) -> int | None:
    """The feature version of the JDK in ``java_home`` (its ``release`` file), or None when there is none.

    >>> import tempfile
    >>> home = Path(tempfile.mkdtemp())
    >>> _ = (home / "release").write_text('JAVA_VERSION="25.0.1"\\n')
    >>> (home / "bin").mkdir(); (home / "bin" / "java").touch()
    >>> java_version(home)
    25
    """
    if not (java_home / "bin" / "java").exists():
        return None
    try:
        found = re.search(r'^JAVA_VERSION="(\d+)', (java_home / "release").read_text(), re.M)
    except OSError:
        found = None
    if found:
        return int(found.group(1))
    return None


def java_home(env: dict[str, str] | None = None, jvm_root: Path = Path("/usr/lib/jvm")) -> Path:
    """A JDK of Java 21 or newer: JAVA_HOME when it is one, else the newest under /usr/lib/jvm; else one line
    saying what to install."""
    env = os.environ if env is None else env
    candidates = [Path(env["JAVA_HOME"])] if env.get("JAVA_HOME") else []
    if jvm_root.is_dir():
        found = [(java_version(p) or 0, p) for p in jvm_root.iterdir() if p.is_dir() and not p.is_symlink()]
        candidates += [path for _, path in sorted(found, reverse=True)]
    java = shutil.which("java", path=env.get("PATH"))
    if java:
        candidates.append(Path(os.path.realpath(java)).parent.parent)
    for home in candidates:
        if (java_version(home) or 0) >= MINIMUM_JAVA:
            return home
    raise StepError(
        f"debezium-server: needs a JDK {MINIMUM_JAVA} or newer (found none in JAVA_HOME, /usr/lib/jvm or PATH); "
        "install one (Debian 13: apt-get install openjdk-21-jdk-headless; Debian 12: a Temurin 21 or 25 JDK) "
        "or set JAVA_HOME to it"
    )


def dist(cfg: StackConfig) -> Path:
    """The unpacked distribution: its runner jar and lib/."""
    return server_dist_dir(cfg) / "debezium-server"


def runner_jar(cfg: StackConfig) -> Path:
    jars = sorted(dist(cfg).glob("debezium-server-dist-*-runner.jar"))
    if not jars:
        raise StepError(
            f"debezium-server: not assembled in {server_dist_dir(cfg)}; run python -m stack assemble --engine server"
        )
    return jars[-1]


def install_transform(cfg: StackConfig) -> None:
    """Our MnistToCsv jar in the distribution's lib/ (copied again when the transform was rebuilt)."""
    built, placed = plugin_dir(cfg) / "mnist-smt" / "mnist-smt.jar", dist(cfg) / "lib" / "mnist-smt.jar"
    if not built.is_file():
        raise StepError(f"debezium-server: {built} is missing; run python -m stack assemble")
    if not placed.is_file() or not filecmp.cmp(built, placed, shallow=False):
        placed.unlink(missing_ok=True)  # a new file, never a write into one (tests hard-link assembled trees)
        shutil.copy2(built, placed)


def start(cfg: StackConfig, run: ServerRun | None = None) -> int:
    """Write the properties anew and start Debezium Server detached; return its pid."""
    run = run or stack_run(cfg)
    home = java_home()
    runner = runner_jar(cfg)
    install_transform(cfg)
    config = run.service.write_config(cfg, properties(cfg, run))
    classpath = f"{runner}:{dist(cfg) / 'lib'}/*"
    argv = [
        str(home / "bin" / "java"),
        run.service.heap,
        # Quarkus' thread pool resets thread locals through java.lang's internals; Java 24+ refuses that unless
        # the module is opened (Debezium Server's run.sh does the same for its optional parts).
        "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "-cp",
        classpath,
        run.service.main_class,
        # Quarkus reads config/application.properties in the working directory and ignores arguments; the path
        # here marks the command line as this STACK_HOME's (JvmService.marks), as for Kafka and Connect.
        str(config),
    ]
    # Only the connector's password from our environment (as for Connect: stack/connect.py).
    env = jvm_env({"DEBEZIUM_PGPASSWORD": cfg.connector_password, "JAVA_HOME": str(home)})
    return run.service.start_argv(cfg, argv, env, cwd=run.service.home(cfg))


def health(port: int, timeout: float = 3.0) -> dict | None:
    """Quarkus' health document (``/q/health``) of the Debezium Server on ``port``, or None when it does not
    answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/q/health", timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:  # 503: DOWN, with the document
        try:
            return json.loads(error.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def is_up(document: dict | None) -> bool:
    """True when the health document says UP (Debezium's own check among them).

    >>> is_up({"status": "UP", "checks": [{"name": "debezium", "status": "UP"}]}), is_up(None)
    (True, False)
    """
    return bool(document) and document.get("status") == "UP"


def describe(document: dict | None, port: int, name: str = SERVICE.name) -> str:
    """``debezium-server UP on 127.0.0.1:8084`` (or the server ``name``'s) or the state and failing checks.

    >>> describe({"status": "DOWN", "checks": [{"name": "debezium", "status": "DOWN"}]}, 8084)
    'debezium-server DOWN on 127.0.0.1:8084 (debezium DOWN)'
    >>> describe(None, 8085, "debezium-server-iris")
    'debezium-server-iris not answering on 127.0.0.1:8085'
    """
    if document is None:
        return f"{name} not answering on 127.0.0.1:{port}"
    failing = [f"{c.get('name')} {c.get('status')}" for c in document.get("checks", []) if c.get("status") != "UP"]
    return f"{name} {document.get('status')} on 127.0.0.1:{port}" + (f" ({', '.join(failing)})" if failing else "")


def java_description(home: Path) -> str:
    """``java 25`` for the JDK in ``home`` (for ``up``'s line)."""
    return f"java {java_version(home)} ({home})"


def slot_active(cfg: StackConfig, slot: str = SLOT_NAME) -> bool:
    """True when a walsender streams from ``slot``: health says UP already while the first snapshot runs."""
    try:
        with postgres.connect(cfg) as conn, conn.cursor() as cur:
            cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            found = cur.fetchone()
        conn.close()
    except psycopg2.Error:
        return False
    return bool(found and found[0])


def drop_slot(cfg: StackConfig, slot: str = SLOT_NAME) -> bool:
    """Drop Debezium Server's slot (inactive only: stop the server first); True when it existed."""
    try:
        conn = postgres.connect(cfg)
    except psycopg2.Error:
        return False
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (slot,),
            )
            return cur.rowcount > 0
    finally:
        conn.close()

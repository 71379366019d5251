"""The steps of ``up``, ``status`` and ``down``, each with a health wait and a one-line failure."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stack import added_datasets, assemble, connect, dataset_servers, kafka, postgres, server
from stack.assembled import lib_dir, plugin_dir, server_dist_dir
from stack.config import StackConfig
from stack.connect import CONNECTOR_NAME
from stack.datasets import Dataset
from stack.processes import StepError, ensure_port_free, exclusive, port_answers, wait_for_process, wait_until

Say = Callable[[str], None]


@dataclass(frozen=True)
class Timeouts:
    """Seconds each health wait may take before ``up`` gives up on that step."""

    postgres: float = 60
    kafka: float = 90
    connect: float = 120
    connector: float = 120
    server: float = 180


def prepare_home(cfg: StackConfig) -> None:
    """Make ``$STACK_HOME`` and its logs/run dirs, or fail in one line when that is impossible."""
    try:
        for path in (cfg.home, cfg.logs, cfg.run):
            path.mkdir(parents=True, exist_ok=True)
        # PostgreSQL runs as its own account when we are root and must reach its dir and its log.
        cfg.home.chmod(0o755)
        cfg.logs.chmod(0o755)
    except OSError as error:
        raise StepError(f"STACK_HOME={cfg.home} is not a writable directory: {error.strerror}") from None


def lock_file(cfg: StackConfig):
    return cfg.run / "up.lock"  # held by `down` too


def up(cfg: StackConfig, say: Say, timeouts: Timeouts = Timeouts()) -> bool:
    """Bring every component up; return False when everything was already running (nothing changed).

    One ``up`` or ``down`` at a time per STACK_HOME: a second one fails at once (see ``processes.exclusive``).
    """
    prepare_home(cfg)
    with exclusive(lock_file(cfg), cfg.home):
        return _up(cfg, say, timeouts)


#: Which JVMs load each assembled part: Kafka runs on lib/, Connect on lib/ and plugins/, Debezium Server on its
#: distribution and our transform (from plugins/).
USERS = {"lib": ("connect", "kafka"), "plugins": ("connect", "debezium-server"), "server": ("debezium-server",)}
REASONS = {
    "lib": "Kafka or stack/pom.xml changed",
    "plugins": "transform or Debezium changed",
    "server": "Debezium Server's version changed",
}


def _up(cfg: StackConfig, say: Say, timeouts: Timeouts) -> bool:
    stale = assemble.stale_parts(cfg)
    if not stale and is_healthy(cfg):
        _drop_stale_slots(cfg, say)
        return False
    running = _running(cfg)
    java_home = _check_ports(cfg, running)
    started = time.monotonic()
    _assemble(cfg, stale, running, say)
    _up_postgres(cfg, say, timeouts, running["postgres"])
    _up_kafka(cfg, say, timeouts, running["kafka"])
    _up_connect(cfg, say, timeouts, running["connect"])
    _up_connectors(cfg, say, timeouts, running["debezium-server"])
    if cfg.engine == "server":
        _up_server(cfg, say, timeouts, running["debezium-server"], java_home)
    added_datasets.set_up_recorded(cfg, say, wait_for_connector, _dataset_timeout(timeouts))
    say(f"up in {time.monotonic() - started:.1f} s")
    return True


def _dataset_timeout(timeouts: Timeouts) -> float:
    """A dataset's capture starts as a connector or as a Debezium Server of its own: the longer wait of the two."""
    return max(timeouts.connector, timeouts.server)


def _running(cfg: StackConfig) -> dict[str, bool]:
    """Which services already run, by the names ``USERS`` uses."""
    return {
        "postgres": postgres.is_running(cfg),
        "kafka": kafka.running_pid(cfg) is not None,
        "connect": connect.running_pid(cfg) is not None,
        "debezium-server": server.SERVICE.running_pid(cfg) is not None,
    }


def _check_ports(cfg: StackConfig, running: dict[str, bool]) -> Path | None:
    """Fail when a service that must start finds its port taken; Debezium Server's Java home when it is the engine.

    Every port is checked before any work, so a busy one fails in a second, not after assembling.
    """
    java_home = None
    if cfg.engine == "server":
        java_home = server.java_home()  # before any work: without Java 21 the engine cannot run
        if not running["debezium-server"]:
            ensure_port_free("127.0.0.1", cfg.server_port, "Debezium Server", "DEBEZIUM_SERVER_PORT")
    if not running["postgres"]:
        ensure_port_free(cfg.pg_host, cfg.pg_port, "PostgreSQL", "PGPORT")
    if not running["kafka"]:
        ensure_port_free(cfg.kafka_host, cfg.kafka_port, "Kafka", "KAFKA_BOOTSTRAP_SERVERS")
        ensure_port_free(cfg.kafka_host, cfg.controller_port, "the Kafka controller", "KAFKA_CONTROLLER_PORT")
    if not running["connect"]:
        ensure_port_free(cfg.connect_host, cfg.connect_port, "Kafka Connect", "CONNECT_URL")
    return java_home


def _up_postgres(cfg: StackConfig, say: Say, timeouts: Timeouts, was_running: bool) -> None:
    """Start PostgreSQL (unless running), apply the schema and drop the replication slots nobody reads."""
    if was_running:
        say(f"postgres   already running on {cfg.pg_host}:{cfg.pg_port}")
    else:
        created = postgres.ensure_cluster(cfg)
        postgres.start(cfg, timeouts.postgres)
        say(f"postgres   {'created and ' if created else ''}started on {cfg.pg_host}:{cfg.pg_port}")
        if postgres.is_relocated(cfg):
            say(
                f"postgres   data in {postgres.cluster_root(cfg)}: the postgres account cannot reach {cfg.home} "
                "(a 0700 home); down --purge removes it"
            )
    postgres.apply_schema(cfg)
    _drop_stale_slots(cfg, say)


def _up_kafka(cfg: StackConfig, say: Say, timeouts: Timeouts, was_running: bool) -> None:
    """Start Kafka (unless running), wait until it answers metadata requests, create the topics."""
    if was_running:
        say(f"kafka      already running on {cfg.kafka_bootstrap}")
    else:
        kafka.ensure_formatted(cfg)
        pid = kafka.start(cfg)
        wait_for_process("kafka", pid, lambda: kafka.answers_metadata(cfg), timeouts.kafka, kafka.log_file(cfg))
        say(f"kafka      started on {cfg.kafka_bootstrap} (controller port {cfg.controller_port})")
    kafka.ensure_topics(cfg)


def _up_connect(cfg: StackConfig, say: Say, timeouts: Timeouts, was_running: bool) -> None:
    """Start Kafka Connect (unless running) and wait until its REST API answers."""
    if was_running:
        say(f"connect    already running on {cfg.connect_url}")
    else:
        pid = connect.start(cfg)
        wait_for_process("connect", pid, lambda: connect.answers(cfg), timeouts.connect, connect.log_file(cfg))
        say(f"connect    started on {cfg.connect_url}")


def _up_connectors(cfg: StackConfig, say: Say, timeouts: Timeouts, server_running: bool) -> None:
    """Register the engine's connectors in Connect, restart their FAILED parts, wait until they are RUNNING."""
    configs = {CONNECTOR_NAME: connect.connector_config(cfg), connect.SINK_NAME: connect.sink_config(cfg)}
    if cfg.engine == "server":
        # Capture runs in Debezium Server; Connect keeps the JDBC sink only (and drops a source connector an
        # earlier `up` with STACK_ENGINE=connect registered, or both engines would capture the tables).
        del configs[CONNECTOR_NAME]
        if connect.connector_status(cfg, CONNECTOR_NAME) is not None:
            connect.rest(cfg, "DELETE", f"/connectors/{CONNECTOR_NAME}", timeout=30)
            say(f"connector  {CONNECTOR_NAME} removed from Connect (STACK_ENGINE=server captures)")
    elif server_running:
        server.SERVICE.stop(cfg)
        say("server     debezium-server stopped (STACK_ENGINE=connect captures)")
    for name, config in configs.items():
        connect.register(cfg, name, config)
        if connect.failure(connect.connector_status(cfg, name)):
            # A task that failed while a service was down (e.g. PostgreSQL restarted) resumes from its offsets.
            connect.restart_failed(cfg, name)
            say(f"{LABELS[name]:<10} restarted the FAILED parts of {name}")
            time.sleep(2)  # let Connect report the restart instead of the old FAILED state
    for name in configs:
        wait_for_connector(cfg, timeouts.connector, name)
        say(f"{LABELS[name]:<10} {name} RUNNING (task RUNNING); logs in {cfg.logs}")


def _up_server(cfg: StackConfig, say: Say, timeouts: Timeouts, was_running: bool, java_home: Path) -> None:
    """Start Debezium Server (unless running) and wait until its health endpoint says UP."""
    if was_running:
        say(f"server     already running on 127.0.0.1:{cfg.server_port}")
    else:
        pid = server.start(cfg)
        wait_for_process(
            "debezium-server",
            pid,
            lambda: server.is_up(server.health(cfg.server_port)),
            timeouts.server,
            server.SERVICE.log_file(cfg),
        )
        wait_for_process(
            "debezium-server (streaming from its slot)",
            pid,
            lambda: server.slot_active(cfg),
            timeouts.server,
            server.SERVICE.log_file(cfg),
        )
        say(f"server     debezium-server started on 127.0.0.1:{cfg.server_port} ({server.java_description(java_home)})")
    say(f"server     capturing into Kafka, slot {server.SLOT_NAME}; offsets in {server.offsets_file(cfg)}")


#: How ``up`` and ``status`` name each connector's line.
LABELS = {CONNECTOR_NAME: "connector", connect.SINK_NAME: "sink"}


def jar_dirs(cfg: StackConfig) -> str:
    """Where the jars are, for the lines that say they were (re-)assembled."""
    dirs = [lib_dir(cfg), plugin_dir(cfg)] + ([server_dist_dir(cfg)] if cfg.engine == "server" else [])
    return ", ".join(map(str, dirs))


def assemble_jars(cfg: StackConfig) -> bool:
    """``python -m stack assemble`` (make setup): build and swap in the stale parts; True when there were any.

    Refused while Kafka or Connect runs: swapping jars under a running JVM breaks it (``up`` builds them aside,
    stops what uses them, swaps).
    """
    stale = assemble.stale_parts(cfg)
    if stale and (kafka.running_pid(cfg) or connect.running_pid(cfg) or server.SERVICE.running_pid(cfg)):
        raise StepError("assemble: the stack is running; `python -m stack up` re-assembles and restarts it")
    return assemble.assemble(cfg, stale)


def _assemble(cfg: StackConfig, stale: set[str], running: dict[str, bool], say: Say) -> None:
    """Build the stale parts beside the live ones, stop the JVMs that load them, swap; ``running`` is updated."""
    if not stale:
        say(f"assemble   up to date: {jar_dirs(cfg)}")
        return
    assemble.build(cfg, stale)  # the running JVMs keep their jars meanwhile
    if any(server.SERVICE.name in USERS[part] for part in stale):
        # The datasets' servers load the same distribution and transform; set_up_recorded starts them again.
        dataset_servers.stop_all(cfg, say)
    users = sorted({name for part in stale for name in USERS[part] if running[name]})
    if not users:
        assemble.swap(cfg, stale)
        say(f"assemble   assembled: {jar_dirs(cfg)}")
        return
    reasons = "; ".join(REASONS[part] for part in assemble.PARTS if part in stale)
    say(f"assemble   re-assembled ({reasons}); restarting {' and '.join(users)}")
    for service in (server.SERVICE, connect.SERVICE, kafka.SERVICE):  # Kafka's clients first
        if service.name in users:
            service.stop(cfg)
            running[service.name] = False
    assemble.swap(cfg, stale)


def _drop_stale_slots(cfg: StackConfig, say: Say) -> None:
    for name, retained in postgres.drop_stale_slots(cfg):
        say(f"postgres   dropped stale replication slot {name} (it retained {retained} of WAL)")


#: How long a connector may stay neither RUNNING nor FAILED before ``up`` restarts it once.
STUCK_S = 45.0


def describe_states(status: dict | None) -> str:
    """``connector UNASSIGNED, task 0 RESTARTING``-style summary of a Connect status document."""
    if not status:
        return "no status"
    parts = [f"connector {status.get('connector', {}).get('state', '?')}"]
    parts += [f"task {task.get('id')} {task.get('state')}" for task in status.get("tasks", [])] or ["no task"]
    return ", ".join(parts)


def wait_for_connector(cfg: StackConfig, timeout: float, name: str = CONNECTOR_NAME) -> None:
    """Wait until the connector ``name`` and its task are RUNNING; fail at once when one of them FAILED."""
    last: dict = {}

    def settled() -> bool:
        last["status"] = connect.connector_status(cfg, name)
        return connect.is_running(last["status"]) or connect.failure(last["status"]) is not None

    if not wait_until(settled, min(timeout, STUCK_S), 0.5) and connect.connector_status(cfg, name) is not None:
        # Neither RUNNING nor FAILED for a while: seen once in 7 broker restarts with exactly-once capture (the
        # task did not come back, state not recorded). Connect's own restart of connector and tasks, said aloud.
        states = describe_states(last.get("status"))
        print(f"{LABELS.get(name, 'connector')} {name} not RUNNING after {STUCK_S:.0f} s ({states}): restarting it")
        connect.rest(cfg, "POST", f"/connectors/{name}/restart?includeTasks=true", timeout=30)
        wait_until(settled, max(0.0, timeout - STUCK_S), 0.5)
    status = last.get("status")
    if connect.is_running(status):
        return
    reason = connect.failure(status) or f"not RUNNING after {timeout:.0f} s"
    raise StepError(f"{LABELS.get(name, 'connector')}: {name} {reason}; see {connect.log_file(cfg)}")


@dataclass(frozen=True)
class Component:
    name: str
    ok: bool
    detail: str


def status(cfg: StackConfig) -> list[Component]:
    """One entry per component, healthy or not, with where it listens (never a credential)."""
    pg_ok = postgres.accepts_logins(cfg)
    slots = f"; {postgres.slot_report(cfg)}" if pg_ok else ""
    kafka_ok = kafka.answers_metadata(cfg) if port_answers(cfg.kafka_host, cfg.kafka_port) else False
    connect_ok = connect.answers(cfg)
    connectors = []
    for name, label in LABELS.items():
        if name == CONNECTOR_NAME and cfg.engine == "server":
            health = server.health(cfg.server_port)
            connectors.append(Component("server", server.is_up(health), server.describe(health, cfg.server_port)))
            continue
        found = connect.connector_status(cfg, name) if connect_ok else None
        ok, detail = connect.is_running(found), connect.describe(name, found)
        # A Debezium task that retries (a snapshot failing over and over) is RUNNING to Connect: not healthy.
        cause = connect.retrying(cfg, name) if ok and name == CONNECTOR_NAME else None
        if cause:
            ok, detail = False, f"{detail}, but Debezium keeps restarting it after: {cause}"
        connectors.append(Component(label, ok, detail))
    return [
        Component("postgres", pg_ok, f"{cfg.pg_host}:{cfg.pg_port} database {cfg.pg_database}" + slots),
        Component("kafka", kafka_ok, cfg.kafka_bootstrap),
        Component("connect", connect_ok, cfg.connect_url),
        *connectors,
        *(Component(*line) for line in added_datasets.components(cfg, connect_ok)),
    ]


def set_aside(cfg: StackConfig) -> list[str]:
    """One line per added dataset's invalid topic that holds records (none while Kafka is down)."""
    if not (port_answers(cfg.kafka_host, cfg.kafka_port) and kafka.answers_metadata(cfg)):
        return []
    return added_datasets.set_aside_lines(cfg)


def add(cfg: StackConfig, dataset: Dataset, say: Say, timeouts: Timeouts = Timeouts()) -> None:
    """``python -m stack add``: set ``dataset`` up on the running stack and record it, so ``up`` sets it up again.

    MNIST is the stack's own: ``up`` sets it up, so adding it changes nothing.
    """
    if dataset.is_mnist:
        say(f"{'dataset':<10} {dataset.name} is built in: python -m stack up sets it up, nothing to add")
        return
    down = [
        name
        for name, answers in (
            ("postgres", lambda: postgres.accepts_logins(cfg)),
            ("kafka", lambda: port_answers(cfg.kafka_host, cfg.kafka_port) and kafka.answers_metadata(cfg)),
            ("connect", lambda: connect.answers(cfg)),
        )
        if not answers()
    ]
    if down:
        raise StepError(f"add {dataset.name}: the stack is not running ({', '.join(down)} down): python -m stack up")
    with exclusive(lock_file(cfg), cfg.home):
        added_datasets.set_up(cfg, dataset, say, wait_for_connector, _dataset_timeout(timeouts))
        added_datasets.record(cfg, dataset)
    say(f"added      {dataset.name}: recorded in {added_datasets.state_file(cfg)}; python -m stack up sets it up again")


def is_healthy(cfg: StackConfig) -> bool:
    return all(component.ok for component in status(cfg))


def down(cfg: StackConfig, say: Say, purge: bool = False) -> None:
    """Stop what ``up`` started, newest first (data kept); ``purge`` also removes ``$STACK_HOME``'s state."""
    if not cfg.home.is_dir():
        for name in ("connect", "kafka", "postgres"):
            say(f"{name:<10} was not running")
        return
    prepare_home(cfg)
    with exclusive(lock_file(cfg), cfg.home):
        dataset_servers.stop_all(cfg, say)
        if server.SERVICE.running_pid(cfg) is not None or cfg.engine == "server":
            say(f"{'server':<10} {'stopped' if server.SERVICE.stop(cfg) else 'was not running'}")
        if purge and postgres.is_running(cfg):
            # Their offsets go with the purge: a slot left behind would hold WAL for a reader that never comes.
            for slot in (server.SLOT_NAME, *added_datasets.server_slots(cfg)):
                if server.drop_slot(cfg, slot):
                    say(f"{'server':<10} dropped replication slot {slot}")
        for name, stop in (("connect", connect.stop), ("kafka", kafka.stop), ("postgres", postgres.stop)):
            say(f"{name:<10} {'stopped' if stop(cfg) else 'was not running'}")
    if purge:
        postgres.purge(cfg)
        for part in ("postgres", "kafka", "connect", server.SERVICE.name, "run", "logs"):
            shutil.rmtree(cfg.home / part, ignore_errors=True)
        for home in cfg.home.glob(f"{dataset_servers.PREFIX}*"):  # the datasets' servers' offsets
            shutil.rmtree(home, ignore_errors=True)
        say(f"purged     data, logs and pid files under {cfg.home} (assembled jars kept)")

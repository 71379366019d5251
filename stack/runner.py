"""The steps of ``up``, ``status`` and ``down``, each with a health wait and a one-line failure."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from stack import assemble, connect, kafka, postgres
from stack.config import CONNECTOR_NAME, StackConfig
from stack.processes import StepError, ensure_port_free, pid_alive, port_answers, tail, wait_until

Say = Callable[[str], None]


@dataclass(frozen=True)
class Timeouts:
    """Seconds each health wait may take before ``up`` gives up on that step."""

    postgres: float = 60
    kafka: float = 90
    connect: float = 120
    connector: float = 120


def _wait_process(name: str, pid: int, ready: Callable[[], bool], timeout: float, log) -> None:
    """Wait until ``ready()``; fail at once if the process died, else after ``timeout`` seconds."""
    if not wait_until(lambda: ready() or not pid_alive(pid), timeout, 0.5) or not pid_alive(pid):
        detail = tail(log, 1)
        reason = "exited" if not pid_alive(pid) else f"not ready after {timeout:.0f} s"
        raise StepError(f"{name}: {reason}; see {log}" + (f" (last line: {detail.strip()[:200]})" if detail else ""))


def up(cfg: StackConfig, say: Say, timeouts: Timeouts = Timeouts()) -> bool:
    """Bring every component up; return False when everything was already running (nothing changed)."""
    if is_healthy(cfg):
        return False
    cfg.home.mkdir(parents=True, exist_ok=True)
    cfg.home.chmod(0o755)  # PostgreSQL runs as its own account when we are root and must reach its dir
    cfg.logs.mkdir(parents=True, exist_ok=True)
    cfg.logs.chmod(0o755)

    # Every port is checked before any work, so a busy one fails in a second, not after assembling.
    pg_running, kafka_running, connect_running = (
        postgres.is_running(cfg),
        kafka.running_pid(cfg) is not None,
        connect.running_pid(cfg) is not None,
    )
    if not pg_running:
        ensure_port_free(cfg.pg_host, cfg.pg_port, "PostgreSQL", "PGPORT")
    if not kafka_running:
        ensure_port_free(cfg.kafka_host, cfg.kafka_port, "Kafka", "KAFKA_BOOTSTRAP_SERVERS")
        ensure_port_free(cfg.kafka_host, cfg.controller_port, "the Kafka controller", "KAFKA_CONTROLLER_PORT")
    if not connect_running:
        ensure_port_free(cfg.connect_host, cfg.connect_port, "Kafka Connect", "CONNECT_URL")

    started = time.monotonic()
    did = assemble.assemble(cfg)
    say(f"assemble   {'assembled' if did else 'up to date'}: {cfg.home / 'lib'}, {cfg.home / 'plugins'}")

    if pg_running:
        say(f"postgres   already running on {cfg.pg_host}:{cfg.pg_port}")
    else:
        created = postgres.ensure_cluster(cfg)
        postgres.start(cfg, timeouts.postgres)
        say(f"postgres   {'created and ' if created else ''}started on {cfg.pg_host}:{cfg.pg_port}")
    postgres.apply_schema(cfg)

    if kafka_running:
        say(f"kafka      already running on {cfg.kafka_bootstrap}")
    else:
        kafka.ensure_formatted(cfg)
        pid = kafka.start(cfg)
        _wait_process("kafka", pid, lambda: kafka.answers_metadata(cfg), timeouts.kafka, kafka.log_file(cfg))
        say(f"kafka      started on {cfg.kafka_bootstrap} (controller port {cfg.controller_port})")
    kafka.ensure_topics(cfg)

    if connect_running:
        say(f"connect    already running on {cfg.connect_url}")
    else:
        pid = connect.start(cfg)
        _wait_process("connect", pid, lambda: connect.answers(cfg), timeouts.connect, connect.log_file(cfg))
        say(f"connect    started on {cfg.connect_url}")

    connect.register(cfg)
    if connect.failure(connect.connector_status(cfg)):
        # A task that failed while a service was down (e.g. PostgreSQL restarted) resumes from its offsets.
        connect.restart_failed(cfg)
        say("connector  restarted its FAILED parts")
        time.sleep(2)  # let Connect report the restart instead of the old FAILED state
    wait_for_connector(cfg, timeouts.connector)
    say(f"connector  {CONNECTOR_NAME} RUNNING (task RUNNING); logs in {cfg.logs}")
    say(f"up in {time.monotonic() - started:.1f} s")
    return True


def wait_for_connector(cfg: StackConfig, timeout: float) -> None:
    """Wait until the connector and its task are RUNNING; fail at once when one of them FAILED."""
    last: dict = {}

    def settled() -> bool:
        last["status"] = connect.connector_status(cfg)
        return connect.is_running(last["status"]) or connect.failure(last["status"]) is not None

    wait_until(settled, timeout, 0.5)
    status = last.get("status")
    if connect.is_running(status):
        return
    reason = connect.failure(status) or f"not RUNNING after {timeout:.0f} s"
    raise StepError(f"connector: {CONNECTOR_NAME} {reason}; see {connect.log_file(cfg)}")


@dataclass(frozen=True)
class Component:
    name: str
    ok: bool
    detail: str


def status(cfg: StackConfig) -> list[Component]:
    """One entry per component, healthy or not, with where it listens (never a credential)."""
    pg_ok = postgres.accepts_logins(cfg)
    kafka_ok = kafka.answers_metadata(cfg) if port_answers(cfg.kafka_host, cfg.kafka_port) else False
    connect_ok = connect.answers(cfg)
    connector = connect.connector_status(cfg) if connect_ok else None
    tasks = ", ".join(f"task {t.get('id')} {t.get('state')}" for t in (connector or {}).get("tasks", []))
    connector_state = (connector or {}).get("connector", {}).get("state", "not registered")
    return [
        Component("postgres", pg_ok, f"{cfg.pg_host}:{cfg.pg_port} database {cfg.pg_database}"),
        Component("kafka", kafka_ok, cfg.kafka_bootstrap),
        Component("connect", connect_ok, cfg.connect_url),
        Component(
            "connector",
            connect.is_running(connector),
            f"{CONNECTOR_NAME} {connector_state}" + (f" ({tasks})" if tasks else ""),
        ),
    ]


def is_healthy(cfg: StackConfig) -> bool:
    return all(component.ok for component in status(cfg))


def down(cfg: StackConfig, say: Say, purge: bool = False) -> None:
    """Stop what ``up`` started, newest first (data kept); ``purge`` also removes ``$STACK_HOME``'s state."""
    for name, stop in (("connect", connect.stop), ("kafka", kafka.stop), ("postgres", postgres.stop)):
        say(f"{name:<10} {'stopped' if stop(cfg) else 'was not running'}")
    if purge:
        for part in ("postgres", "kafka", "connect", "run", "logs"):
            shutil.rmtree(cfg.home / part, ignore_errors=True)
        say(f"purged     data, logs and pid files under {cfg.home} (assembled jars kept)")

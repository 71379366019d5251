"""The datasets ``python -m stack add`` sets up beside MNIST: their record under ``$STACK_HOME``, their set-up
(SQL, topics, source connector and predictions sink) and their lines in ``status``.

MNIST is not among them: ``up`` sets it up as it always has. Each added dataset has its own source connector, slot
and publication, so setting one up never reconfigures or restarts another's connector. With ``STACK_ENGINE=server``
its capture runs in a Debezium Server of its own instead (``stack.dataset_servers``), whose health port is recorded
here beside the dataset; the predictions sink stays in Connect with either engine.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from stack import connect, dataset_servers, kafka, postgres
from stack.config import StackConfig
from stack.datasets import DATASETS_DIR, Dataset, DatasetError, load
from stack.processes import StepError

Say = Callable[[str], None]
#: Waits until a connector is RUNNING, failing in one line (``runner.wait_for_connector``).
Wait = Callable[[StackConfig, float, str], None]
#: The state file's section of the dataset servers' health ports (``STACK_ENGINE=server``).
SERVER_PORTS = "server_ports"


def state_file(cfg: StackConfig) -> Path:
    """Where the added datasets are recorded: kept by ``down`` (and ``down --purge``, which removes data only)."""
    return cfg.home / "datasets.json"


def recorded(cfg: StackConfig) -> dict[str, str]:
    """The added datasets: name -> what ``load`` reads (a name in ``datasets/`` or a description's path)."""
    try:
        document = json.loads(state_file(cfg).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise StepError(f"{state_file(cfg)}: unreadable ({error}); remove it and add the datasets again") from None
    return _section(document, "datasets", str)


def server_ports(cfg: StackConfig) -> dict[str, int]:
    """Each dataset's Debezium Server health port (``STACK_ENGINE=server``): name -> port."""
    try:
        document = json.loads(state_file(cfg).read_text())
    except (OSError, ValueError):
        return {}  # recorded() says what is wrong with the file
    return _section(document, SERVER_PORTS, int)


def _section(document: object, key: str, kind: type) -> dict:
    section = document.get(key) if isinstance(document, dict) else None
    return {str(name): kind(value) for name, value in section.items()} if isinstance(section, dict) else {}


def _write(cfg: StackConfig, datasets: dict[str, str], ports: dict[str, int] | None = None) -> None:
    """Write the record anew (the ports as they are unless ``ports`` is given)."""
    ports = server_ports(cfg) if ports is None else ports
    document = {"datasets": dict(sorted(datasets.items()))}
    if ports:
        document[SERVER_PORTS] = dict(sorted(ports.items()))
    path = state_file(cfg)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(document, indent=2) + "\n")
    scratch.replace(path)  # atomic: a crash leaves the old record or the new one


def server_port(cfg: StackConfig, name: str) -> int:
    """The dataset's Debezium Server port: the recorded one, else the first free one after DEBEZIUM_SERVER_PORT
    that no other dataset holds, recorded at once so the next ``up`` finds it again."""
    ports = server_ports(cfg)
    if name not in ports:
        cfg.home.mkdir(parents=True, exist_ok=True)
        ports[name] = dataset_servers.free_port_after(cfg, ports.values())
        _write(cfg, recorded(cfg), ports)
    return ports[name]


def record(cfg: StackConfig, dataset: Dataset) -> None:
    """Remember ``dataset`` so ``up`` sets it up again: by name when it is a built-in one (the checkout may move),
    else by its description's absolute path."""
    built_in = dataset.path.resolve().parent == DATASETS_DIR.resolve()
    _write(cfg, {**recorded(cfg), dataset.name: dataset.name if built_in else str(dataset.path.resolve())})


def forget(cfg: StackConfig, name: str) -> bool:
    """Stop setting ``name`` up on ``up`` (its tables, topics and connectors stay); True when it was recorded."""
    datasets, ports = recorded(cfg), server_ports(cfg)
    was_recorded, had_port = datasets.pop(name, None) is not None, ports.pop(name, None) is not None
    if was_recorded or had_port:
        _write(cfg, datasets, ports)
    return was_recorded


def set_up(cfg: StackConfig, dataset: Dataset, say: Say, wait: Wait, timeout: float) -> None:
    """Apply the dataset's SQL, create its topics, register its connectors and wait until they are RUNNING, one
    line a step. Idempotent: every step leaves what exists as it is."""
    contract = dataset.contract
    postgres.apply_sql(cfg, dataset.tables_sql() + "\n" + dataset.predictions_sql(), f"{dataset.path}'s SQL")
    say(
        f"postgres   {dataset.name}: tables {', '.join(dataset.tables)}, {contract.predictions_table}; "
        f"publication {contract.publication}"
    )
    topics = tuple(dict.fromkeys(contract.data_topics()))
    created = kafka.ensure_topics(cfg, topics, tuple(dict.fromkeys(contract.replayed_topics())))
    say(f"kafka      {dataset.name}: topics {', '.join(topics)} ({len(created)} created)")
    registrations = {"connector": dataset.source_registration(cfg), "sink": dataset.sink_registration(cfg)}
    if cfg.engine == "server":
        _capture_in_server(cfg, dataset, say, timeout)
        del registrations["connector"]
    elif dataset_servers.stop(cfg, dataset.name):
        say(f"{'server':<10} {dataset_servers.service(dataset.name).name} stopped (STACK_ENGINE=connect captures)")
    _register(cfg, registrations, say, wait, timeout)


def _capture_in_server(cfg: StackConfig, dataset: Dataset, say: Say, timeout: float) -> None:
    """Capture the dataset in its own Debezium Server; a Connect source connector an earlier ``add`` with
    STACK_ENGINE=connect registered goes, or both engines would capture its tables."""
    name = dataset.contract.connector
    if connect.connector_status(cfg, name) is not None:
        connect.rest(cfg, "DELETE", f"/connectors/{name}", timeout=30)
        say(f"connector  {name} removed from Connect (STACK_ENGINE=server captures)")
    port = server_port(cfg, dataset.name)
    setting = f"{SERVER_PORTS}.{dataset.name} in {state_file(cfg)}"
    dataset_servers.start(cfg, dataset, port, say, timeout, setting)


def _register(cfg: StackConfig, registrations: dict[str, dict], say: Say, wait: Wait, timeout: float) -> None:
    """Register the connectors in Connect, restart their FAILED parts, wait until they are RUNNING."""
    for registration in registrations.values():
        connect.register(cfg, registration["name"], registration["config"])
        if connect.failure(connect.connector_status(cfg, registration["name"])):
            # Failed while a service was down: it resumes from its offsets.
            connect.restart_failed(cfg, registration["name"])
            time.sleep(2)  # let Connect report the restart instead of the old FAILED state
    for label, registration in registrations.items():
        wait(cfg, timeout, registration["name"])
        say(f"{label:<10} {registration['name']} RUNNING (task RUNNING)")


def set_up_recorded(cfg: StackConfig, say: Say, wait: Wait, timeout: float) -> None:
    """``up``: set up every recorded dataset again; one whose description no longer loads is said and skipped
    (the stack itself still comes up)."""
    for name, where in recorded(cfg).items():
        try:
            dataset = load(where)
        except DatasetError as error:
            say(f"dataset    {name} not set up: {error}")
            continue
        set_up(cfg, dataset, say, wait, timeout)


def components(cfg: StackConfig, connect_ok: bool) -> list[tuple[str, bool, str]]:
    """``(dataset name, ok, detail)`` for each added dataset's capture (its source connector, or its Debezium
    Server's health with STACK_ENGINE=server) and its sink, in ``status``."""
    lines = []
    ports = server_ports(cfg)
    for name, where in recorded(cfg).items():
        try:
            contract = load(where).contract
        except DatasetError as error:
            lines.append((name, False, f"description unusable: {error}"))
            continue
        connectors = [contract.connector, contract.sink_connector]
        if cfg.engine == "server":
            lines.append((name, *dataset_servers.health_line(name, ports.get(name))))
            connectors.remove(contract.connector)
        for connector in connectors:
            found = connect.connector_status(cfg, connector) if connect_ok else None
            lines.append((name, connect.is_running(found), connect.describe(connector, found)))
    return lines


def server_slots(cfg: StackConfig) -> list[str]:
    """The Debezium Server slots of the recorded datasets (``down --purge`` drops them with their offsets)."""
    slots = []
    for where in recorded(cfg).values():
        try:
            slots.append(load(where).contract.server_slot)
        except DatasetError:
            continue
    return slots


def set_aside_lines(cfg: StackConfig) -> list[str]:
    """``NAME: N rows set aside on <topic>.invalid (last reason: ...)`` for each added dataset's invalid topic
    that holds records."""
    lines = []
    for where in recorded(cfg).values():
        try:
            contract = load(where).contract
        except DatasetError:
            continue  # components() says so
        for topic in dict.fromkeys(contract.invalid(contract.topic(split)) for split in contract.splits):
            found = kafka.set_aside(cfg, topic, contract.error_header)
            if found is not None:
                lines.append(set_aside_line(contract.dataset, topic, found))
    return lines


def set_aside_line(name: str, topic: str, found: kafka.SetAside) -> str:
    """The line ``status`` prints for an invalid topic holding records.

    >>> set_aside_line("iris", "tf.public.iris_train.invalid", kafka.SetAside(2, "feature petal_width: missing"))
    'iris: 2 rows set aside on tf.public.iris_train.invalid (last reason: feature petal_width: missing)'
    >>> set_aside_line("iris", "t.invalid", kafka.SetAside(1, None, complete=False))
    'iris: at least 1 row set aside on t.invalid (last reason: none given)'
    """
    count = f"{found.records} row{'s' if found.records != 1 else ''}"
    reason = " ".join((found.last_reason or "none given").split())[:300]
    return f"{name}: {'' if found.complete else 'at least '}{count} set aside on {topic} (last reason: {reason})"

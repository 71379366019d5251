"""The datasets ``python -m stack add`` sets up beside MNIST: their record under ``$STACK_HOME``, their set-up
(SQL, topics, source connector and predictions sink) and their lines in ``status``.

MNIST is not among them: ``up`` sets it up as it always has. Each added dataset has its own source connector, slot
and publication, so setting one up never reconfigures or restarts another's connector.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from stack import connect, kafka, postgres
from stack.config import StackConfig
from stack.datasets import DATASETS_DIR, Dataset, DatasetError, load
from stack.processes import StepError

Say = Callable[[str], None]
#: Waits until a connector is RUNNING, failing in one line (``runner.wait_for_connector``).
Wait = Callable[[StackConfig, float, str], None]


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
    datasets = document.get("datasets") if isinstance(document, dict) else None
    return {str(name): str(where) for name, where in datasets.items()} if isinstance(datasets, dict) else {}


def _write(cfg: StackConfig, datasets: dict[str, str]) -> None:
    path = state_file(cfg)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"datasets": dict(sorted(datasets.items()))}, indent=2) + "\n")
    scratch.replace(path)  # atomic: a crash leaves the old record or the new one


def record(cfg: StackConfig, dataset: Dataset) -> None:
    """Remember ``dataset`` so ``up`` sets it up again: by name when it is a built-in one (the checkout may move),
    else by its description's absolute path."""
    built_in = dataset.path.resolve().parent == DATASETS_DIR.resolve()
    _write(cfg, {**recorded(cfg), dataset.name: dataset.name if built_in else str(dataset.path.resolve())})


def forget(cfg: StackConfig, name: str) -> bool:
    """Stop setting ``name`` up on ``up`` (its tables, topics and connectors stay); True when it was recorded."""
    datasets = recorded(cfg)
    if datasets.pop(name, None) is None:
        return False
    _write(cfg, datasets)
    return True


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
    registrations = {
        "connector": dataset.source_registration(cfg),
        "sink": dataset.sink_registration(cfg),
    }
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
    """``(dataset name, ok, detail)`` for each added dataset's source connector and sink, in ``status``."""
    lines = []
    for name, where in recorded(cfg).items():
        try:
            contract = load(where).contract
        except DatasetError as error:
            lines.append((name, False, f"description unusable: {error}"))
            continue
        for connector in (contract.connector, contract.sink_connector):
            found = connect.connector_status(cfg, connector) if connect_ok else None
            lines.append((name, connect.is_running(found), connect.describe(connector, found)))
    return lines


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

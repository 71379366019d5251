"""One Debezium Server a dataset ``python -m stack add`` set up, when ``STACK_ENGINE=server`` captures.

Each added dataset's capture runs in a Debezium Server of its own, as each has a Connect source connector of its
own under ``STACK_ENGINE=connect``: adding one never restarts another's. Its service is
``debezium-server@<name>`` (directory ``$STACK_HOME/debezium-server@<name>``, log and pid file named alike), its
slot ``<name>_server_slot``, its offsets in that directory, and its properties derive from the dataset's Connect
registration (``Dataset.source_registration``) exactly as MNIST's derive from the talk's JSON
(``server.source_settings``): same tables, publication and transforms. The predictions sink stays in Connect.

Its health port is recorded per dataset in ``$STACK_HOME/datasets.json`` (``added_datasets.server_port``): the
first port after DEBEZIUM_SERVER_PORT that no other dataset holds and nothing answers on, picked when the dataset
is first set up with this engine and kept from then on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from stack import server
from stack.config import StackConfig
from stack.jvm_service import JvmService
from stack.processes import ensure_port_free, port_bindable, wait_for_process

if TYPE_CHECKING:
    from stack.datasets import Dataset

Say = Callable[[str], None]
#: A dataset's server is ``debezium-server@<name>``: MNIST's stays ``debezium-server``, and no dataset's name can
#: make it the distribution's directory (``debezium-server-dist``).
PREFIX = f"{server.SERVICE.name}@"
#: A dataset's capture holds a few tables of its own: half MNIST's server's heap is plenty.
HEAP = "-Xmx512m"


def service(name: str) -> JvmService:
    """The dataset ``name``'s Debezium Server: its directory, log and pid file under ``$STACK_HOME``.

    >>> service("iris").name
    'debezium-server@iris'
    """
    return JvmService(
        f"{PREFIX}{name}", main_class=server.MAIN_CLASS, config_name=server.SERVICE.config_name, heap=HEAP
    )


def server_run(cfg: StackConfig, dataset: Dataset, port: int) -> server.ServerRun:
    """The dataset's server: its Connect registration's source config, on its own slot, health on ``port``."""
    config = dataset.source_registration(cfg)["config"]
    overrides = (("slot.name", dataset.contract.server_slot),)
    return server.ServerRun(service(dataset.name), port, overrides, tuple(config.items()))


def properties(cfg: StackConfig, dataset: Dataset, port: int) -> list[str]:
    """The dataset server's ``application.properties`` lines (``server.properties`` of ``server_run``)."""
    return server.properties(cfg, server_run(cfg, dataset, port))


def pick_port(base: int, held: Iterable[int], busy: Callable[[int], bool]) -> int:
    """The first port after ``base`` (DEBEZIUM_SERVER_PORT) that no other dataset holds and that is not busy.

    >>> pick_port(8084, [8085], lambda port: port == 8086)
    8087
    """
    taken = set(held)
    port = base + 1
    while port in taken or busy(port):
        port += 1
    return port


def free_port_after(cfg: StackConfig, held: Iterable[int]) -> int:
    """``pick_port`` from DEBEZIUM_SERVER_PORT: a port the server can bind on 127.0.0.1 now."""
    return pick_port(cfg.server_port, held, lambda port: not port_bindable("127.0.0.1", port))


def start(cfg: StackConfig, dataset: Dataset, port: int, say: Say, timeout: float, port_setting: str) -> None:
    """Start the dataset's server unless it runs; wait until its health says UP and it streams from its slot.

    ``port_setting`` names where its port is recorded, for the line that says the port is busy.
    """
    run = server_run(cfg, dataset, port)
    label, slot = f"{'server':<10} {run.service.name}", dataset.contract.server_slot
    if run.service.running_pid(cfg) is not None:
        say(f"{label} already running on 127.0.0.1:{port}")
        return
    ensure_port_free("127.0.0.1", port, run.service.name, port_setting)
    pid = server.start(cfg, run)
    log = run.service.log_file(cfg)
    wait_for_process(run.service.name, pid, lambda: server.is_up(server.health(port)), timeout, log)
    wait_for_process(
        f"{run.service.name} (streaming from its slot)", pid, lambda: server.slot_active(cfg, slot), timeout, log
    )
    say(f"{label} started on 127.0.0.1:{port}, slot {slot}; offsets in {server.offsets_file(cfg, run.service)}")


def stop(cfg: StackConfig, name: str) -> bool:
    """Stop the dataset ``name``'s server; True when it was running."""
    return service(name).stop(cfg)


def running(cfg: StackConfig) -> list[str]:
    """The names of the datasets whose server runs (by their pid files: a dataset forgotten since is found too)."""
    if not cfg.run.is_dir():
        return []
    names = sorted(path.stem.removeprefix(PREFIX) for path in cfg.run.glob(f"{PREFIX}*.pid"))
    return [name for name in names if service(name).running_pid(cfg) is not None]


def stop_all(cfg: StackConfig, say: Say) -> list[str]:
    """Stop every dataset's server, one line each; the names of those stopped."""
    stopped = [name for name in running(cfg) if stop(cfg, name)]
    for name in stopped:
        say(f"{'server':<10} {service(name).name} stopped")
    return stopped


def health_line(name: str, port: int | None) -> tuple[bool, str]:
    """``(ok, detail)`` of the dataset ``name``'s server for ``stack status``."""
    if port is None:
        return False, f"{service(name).name} has no port yet: python -m stack up starts it"
    document = server.health(port)
    return server.is_up(document), server.describe(document, port, service(name).name)

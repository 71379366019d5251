"""STACK_ENGINE=server for an added dataset: its Debezium Server's properties derive from its Connect registration,
on a slot, directory and health port of its own (recorded in the state file)."""

from __future__ import annotations

import socket

from stack import added_datasets, dataset_servers, server
from stack.config import StackConfig
from stack.datasets import load


def settings(tmp_path, **env: str) -> StackConfig:
    return StackConfig.from_env({"STACK_HOME": str(tmp_path), "STACK_ENGINE": "server", **env})


def as_dict(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines)


def test_a_datasets_server_captures_its_tables_with_its_transforms_on_its_own_slot(tmp_path):
    cfg = settings(tmp_path)

    props = as_dict(dataset_servers.properties(cfg, load("iris"), 8091))

    assert props["debezium.source.slot.name"] == "iris_server_slot"
    assert props["debezium.source.publication.name"] == "iris_publication"
    assert props["debezium.source.table.include.list"] == "public.iris_train,public.iris_test"
    assert props["debezium.transforms"] == "partition,unwrap,csv"
    assert props["debezium.transforms.csv.type"] == "io.debezium.transforms.RowToCsv"
    assert props["debezium.transforms.csv.feature.fields"] == "sepal_length,sepal_width,petal_length,petal_width"
    assert props["debezium.transforms.csv.label.classes"] == "Iris-setosa,Iris-versicolor,Iris-virginica"
    assert props["debezium.transforms.csv.header.prefix"] == "iris"
    assert props["debezium.transforms.partition.partition.payload.fields"] == "change.id"
    assert props["quarkus.http.port"] == "8091"
    assert props["debezium.source.offset.storage.file.filename"] == str(
        tmp_path / "debezium-server@iris" / "offsets.dat"
    )


def test_every_setting_of_the_connect_registration_reaches_the_server_but_connects_own(tmp_path):
    cfg = settings(tmp_path, CONNECT_PGHOST="connect-side-host", DELIVERY="exactly-once")
    dataset = load("iris")
    registration = dataset.source_registration(cfg)["config"]

    props = as_dict(dataset_servers.properties(cfg, dataset, 8091))

    derived = {key.removeprefix("debezium.source.").removeprefix("debezium."): value for key, value in props.items()}
    own = {"slot.name", "database.hostname", "database.port", "database.password", *server.CONNECT_ONLY}
    own |= set(server.CONNECT_EXACTLY_ONCE)
    assert {k: v for k, v in registration.items() if k not in own} == {
        k: derived[k] for k in registration if k not in own
    }
    assert not set(server.CONNECT_EXACTLY_ONCE) & set(derived)
    assert props["debezium.source.database.hostname"] == cfg.pg_host, "the server runs here, not where Connect does"
    assert props["debezium.source.database.password"] == "${DEBEZIUM_PGPASSWORD}"


def test_mnists_server_is_the_talks_json_as_before(tmp_path):
    cfg = settings(tmp_path)

    props = as_dict(server.properties(cfg, server.stack_run(cfg)))

    assert props["debezium.source.slot.name"] == "mnist_server_slot"
    assert props["debezium.transforms.mnist.type"] == "io.debezium.transforms.MnistToCsv"
    assert props["quarkus.http.port"] == str(cfg.server_port)


def test_each_dataset_gets_the_next_port_after_debezium_server_port_and_keeps_it(tmp_path):
    cfg = settings(tmp_path, DEBEZIUM_SERVER_PORT="39000")
    added_datasets.record(cfg, load("iris"))

    first = added_datasets.server_port(cfg, "iris")
    second = added_datasets.server_port(cfg, "own")

    assert first > 39000 and second > first
    assert added_datasets.server_port(cfg, "iris") == first, "recorded: the next up finds it again"
    assert added_datasets.recorded(cfg) == {"iris": "iris"}, "a port records no dataset"
    added_datasets.record(cfg, load("iris"))
    assert added_datasets.server_ports(cfg) == {"iris": first, "own": second}
    assert added_datasets.forget(cfg, "iris")
    assert added_datasets.server_ports(cfg) == {"own": second}


def test_the_next_port_skips_those_held_and_those_busy():
    assert dataset_servers.pick_port(8084, [8085, 8087], lambda port: port == 8086) == 8088


def test_a_new_dataset_server_port_skips_one_held_by_a_socket_that_answers_no_one(tmp_path):
    # A port bound without listening (as an outgoing connection's own end is) refuses connections, yet the server
    # could not bind it: `stack add` then failed with "port ... is busy".
    base, holder = held_pair()
    with base, holder:
        port = base.getsockname()[1]
        cfg = settings(tmp_path, DEBEZIUM_SERVER_PORT=str(port))

        chosen = dataset_servers.free_port_after(cfg, [])

    assert chosen > port + 1


def held_pair() -> tuple[socket.socket, socket.socket]:
    """Two sockets bound (not listening) on two neighbouring free ports of 127.0.0.1."""
    for _ in range(50):
        base, holder = socket.socket(), socket.socket()
        base.bind(("127.0.0.1", 0))
        try:
            holder.bind(("127.0.0.1", base.getsockname()[1] + 1))
            return base, holder
        except OSError:
            base.close()
            holder.close()
    raise AssertionError("no two neighbouring free ports on 127.0.0.1 in 50 tries")


def test_status_says_a_dataset_server_without_a_port_yet(tmp_path):
    assert dataset_servers.health_line("iris", None) == (
        False,
        "debezium-server@iris has no port yet: python -m stack up starts it",
    )


def test_no_dataset_server_runs_on_a_fresh_home(tmp_path):
    cfg = settings(tmp_path)
    assert dataset_servers.running(cfg) == []
    assert dataset_servers.stop_all(cfg, print) == []

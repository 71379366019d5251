"""The native stack and the container stack run from the same connector JSON, SQL and versions: checked on the
configuration each one renders (the connector config the native stack registers, the worker properties it
writes, and docker-compose.yml as compose-go's loader renders it: the ``services`` fixture of
tests/unit/conftest.py), not on the text of the files."""

from __future__ import annotations

import json
from pathlib import Path

from stack import connect
from stack.config import StackConfig
from stack.versions import pinned_versions

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR_JSON = ROOT / "debezium" / "register-postgres.json"


def native_config(tmp_path: Path, **env: str) -> StackConfig:
    return StackConfig.from_env({"STACK_HOME": str(tmp_path), **env})


def worker_properties(cfg: StackConfig) -> dict[str, str]:
    lines = connect.write_config(cfg).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_native_connector_config_is_the_json_with_only_host_port_and_database_from_the_environment(tmp_path):
    cfg = native_config(tmp_path, PGHOST="10.1.2.3", PGPORT="6543", PGDATABASE="images")
    registered = connect.connector_config(cfg)

    shipped = json.loads(CONNECTOR_JSON.read_text())["config"]
    changed = {key for key in shipped if registered.get(key) != shipped[key]}
    assert changed == {"database.hostname", "database.port", "database.dbname"}
    assert (registered["database.hostname"], registered["database.port"], registered["database.dbname"]) == (
        "10.1.2.3",
        "6543",
        "images",
    )
    assert set(registered) == set(shipped)


def test_native_connector_config_keeps_the_data_contract(tmp_path):
    registered = connect.connector_config(native_config(tmp_path))

    assert registered["topic.prefix"] == "tf"
    assert registered["table.include.list"] == "public.mnist_.*"
    assert registered["transforms"] == "partition,unwrap,mnist"
    assert registered["transforms.mnist.type"] == "io.debezium.transforms.MnistToCsv"
    assert registered["plugin.name"] == "pgoutput"
    assert registered["publication.autocreate.mode"] == "disabled"


def test_native_worker_flushes_offsets_every_second_and_acknowledges_every_record(tmp_path):
    """The README's "at most ~1 s of rows re-sent" rests on the flush interval the worker really gets."""
    properties = worker_properties(native_config(tmp_path))

    assert properties["offset.flush.interval.ms"] == "1000"
    assert properties["producer.acks"] == "all"
    assert properties["producer.enable.idempotence"] == "true"
    assert properties["producer.linger.ms"] == "2"


def test_compose_images_are_the_pinned_versions(services):
    versions = pinned_versions()

    assert services["postgres"]["image"] == f"postgres:{versions['POSTGRES_VERSION']}"
    assert services["kafka"]["image"] == f"apache/kafka:{versions['KAFKA_VERSION']}"
    build_args = services["connect"]["build"]["args"]
    assert (build_args["DEBEZIUM_VERSION"], build_args["KAFKA_VERSION"]) == (
        versions["DEBEZIUM_VERSION"],
        versions["KAFKA_VERSION"],
    )


def test_compose_mounts_the_sql_and_connector_json_the_native_stack_uses(services):
    from stack.postgres import SQL_DIR

    def mounts(service: str) -> dict[str, str]:
        return {v["target"]: v["source"] for v in services[service].get("volumes", []) if v.get("type") == "bind"}

    assert mounts("postgres")["/docker-entrypoint-initdb.d"] == str(SQL_DIR)
    register = {target: source for name in services for target, source in mounts(name).items()}
    assert register["/register-postgres.json"] == str(connect.CONNECTOR_JSON) == str(CONNECTOR_JSON)

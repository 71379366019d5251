"""``python -m stack add``: a dataset described in TOML streams its rows as CSV records on its own topics, through
its own connector, and a row the transform cannot convert is set aside where ``stack status`` reports it.

Each dataset this test adds is removed at its end (connectors deleted, slot dropped, record forgotten), so the
session stack's status lines stay MNIST's for the other tests.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from probes.rows import execute
from stack.datasets import DATASETS_DIR, load
from tests.integration.support.datasets import insert_rows, records_with_ids, remove_dataset

IRIS_ROWS = [
    ("Iris-virginica", 6.3, 3.3, 6.0, 2.5),
    ("Iris-setosa", 5.1, 3.5, 1.4, 0.2),
    ("Iris-versicolor", 7.0, 3.2, 4.7, 1.4),
]
CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
ADD_TIMEOUT_S = 300


@pytest.fixture
def added(native):
    """``add(name_or_path)`` runs ``python -m stack add`` on the session stack; each added dataset is removed after
    the test."""
    contracts = {}

    def add(name_or_path: str):
        result = native.run("stack", "add", name_or_path, timeout=ADD_TIMEOUT_S)
        contract = load(name_or_path).contract
        contracts[contract.dataset] = contract
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    yield add
    for contract in contracts.values():
        remove_dataset(native, contract)


def iris_copy(directory: Path) -> tuple[str, Path]:
    """iris's description under a name and tables of the test's own (the iris tables are the iris test's)."""
    name = f"flowers_{uuid.uuid4().hex[:8]}"
    text = (DATASETS_DIR / "iris.toml").read_text()
    text = text.replace('name = "iris"', f'name = "{name}"').replace('loader = "iris"\n', "")
    path = directory / f"{name}.toml"
    path.write_text(text.replace("iris_train", f"{name}_train").replace("iris_test", f"{name}_test"))
    return name, path


def test_an_added_iris_like_dataset_streams_each_row_as_its_class_index_and_four_values(native, added, tmp_path):
    name, path = iris_copy(tmp_path)
    first = added(str(path))
    again = added(str(path))  # adding twice changes nothing

    for result in (first, again):
        assert f"connector  {name}-connector RUNNING" in result.stdout
        assert f"sink       {name}-predictions-sink RUNNING" in result.stdout
    tables = f"tables {name}_train, {name}_test, {name}_predictions; publication {name}_publication"
    assert f"postgres   {name}: {tables}" in first.stdout
    columns = ["iris_class", "sepal_length", "sepal_width", "petal_length", "petal_width"]
    ids = insert_rows(native.postgres, f"{name}_train", columns, IRIS_ROWS)

    found = records_with_ids(native.bootstrap, f"tf.public.{name}_train", f"{name}.id", ids)

    assert set(found) == set(ids)
    for row_id, row in zip(ids, IRIS_ROWS, strict=True):
        record = found[row_id]
        assert record.key == str(CLASSES.index(row[0])).encode()
        values = record.value.decode().split(",")
        assert [float(v) for v in values] == pytest.approx(row[1:], rel=1e-6)
        assert record.headers[f"{name}.table"] == f"{name}_train".encode()
    status = native.run("stack", "status")
    assert f"{name}-connector RUNNING (task 0 RUNNING)" in status.stdout
    assert f"{name}-predictions-sink RUNNING (task 0 RUNNING)" in status.stdout


def scratch_description(directory: Path) -> tuple[str, Path]:
    """A small dataset of its own: one table (train = test) with two numeric features."""
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    path = directory / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nmodel = "mlp"\n\n[tables]\ntrain = "{name}_rows"\ntest = "{name}_rows"\nkey = "id"\n\n'
        '[label]\ncolumn = "species"\nsql = "text"\nclasses = ["a", "b"]\n\n'
        '[[features]]\ncolumn = "sepal_length"\nsql = "real"\n\n[[features]]\ncolumn = "petal_width"\nsql = "real"\n'
    )
    return name, path


def test_a_dropped_feature_column_sets_the_next_row_aside_and_status_says_so(native, added, tmp_path):
    name, path = scratch_description(tmp_path)
    added(str(path))
    table, topic = f"{name}_rows", f"tf.public.{name}_rows"
    (kept,) = insert_rows(native.postgres, table, ["species", "sepal_length", "petal_width"], [("b", 1.5, 0.5)])
    assert records_with_ids(native.bootstrap, topic, f"{name}.id", [kept])[kept].value == b"1.5,0.5"

    execute(native.postgres, f"ALTER TABLE public.{table} DROP COLUMN petal_width")
    (set_aside,) = insert_rows(native.postgres, table, ["species", "sepal_length"], [("a", 2.5)])

    invalid = records_with_ids(native.bootstrap, f"{topic}.invalid", f"{name}.id", [set_aside])
    assert set(invalid) == {set_aside}
    assert b"petal_width" in invalid[set_aside].headers[f"{name}.error"]
    status = native.run("stack", "status")
    lines = [line for line in status.stdout.splitlines() if line.startswith(f"{name}: ")]
    assert len(lines) == 1, status.stdout
    assert lines[0].startswith(f"{name}: 1 row set aside on {topic}.invalid (last reason: ")
    assert "petal_width" in lines[0]

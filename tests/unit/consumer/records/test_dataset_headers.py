"""Another dataset's records name their rows with its own headers (``iris.table``, ``iris.id``): the predictor,
evaluation and the table view read them, and its prediction records are named after its predictions topic."""

import json

from consumer.learning.changes import LatestVersions
from consumer.records.predictions import RowRef, plan_batch, prediction_key, prediction_value, row_ref
from stack.contract import MNIST
from stack.datasets import load

IRIS = load("iris").contract


def iris_row(i: int, op: bytes = b"c"):
    return [
        ("iris.table", b"iris_test"),
        ("iris.id", str(i).encode()),
        ("__source_ts_ms", b"1700000000000"),
        ("__op", op),
    ]


def test_rows_are_named_by_the_datasets_headers():
    assert row_ref(iris_row(7), IRIS) == RowRef("iris_test", 7, 1700000000000)


def test_another_datasets_headers_name_no_mnist_row():
    plan = plan_batch([iris_row(1)], [True], MNIST)
    assert plan.changes == [] and dict(plan.malformed) == {"no table header": 1}


def test_the_predictor_plans_with_the_datasets_headers():
    plan = plan_batch([iris_row(1), iris_row(2, b"d")], [True, True], IRIS)
    assert [(index, ref.id) for index, ref in plan.changes] == [(0, 1), (None, 2)]


def test_the_table_view_finds_rows_by_the_datasets_headers():
    latest = LatestVersions(IRIS)
    latest.add([0, 0, 0], [iris_row(1), iris_row(1, b"u"), iris_row(2, b"d")])
    assert (latest.records, latest.rows, latest.live()) == (3, 1, {(0, 1)})


def test_prediction_records_are_named_after_the_datasets_predictions_topic():
    ref = RowRef("iris_test", 7, None)
    key = json.loads(prediction_key(ref, IRIS))
    value = json.loads(prediction_value(ref, 2, 0.9, 1, 1700000000000, IRIS))
    assert key["schema"]["name"] == "iris.predictions.Key" and key["payload"] == {"source_table": "iris_test", "id": 7}
    assert value["schema"]["name"] == "iris.predictions.Value" and value["payload"]["predicted"] == 2
    assert json.loads(prediction_key(ref))["schema"]["name"] == "mnist.predictions.Key"

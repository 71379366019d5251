"""The talk's second example end to end, as ``make demo DATASET=iris`` runs it: ``stack add iris``, the loader's
iris hook (scikit-learn's bundled copy, 120 train / 30 test rows), one-shot training of the MLP, live evaluation
of the test rows, predictions back into ``iris_predictions`` through the JDBC sink and ``show_predictions``'s join;
then Spark scores the same rows with ``--dataset iris``. What a user sees is checked: the evaluation's accuracy
line (at least 0.9), the predictor's and Spark's summaries, and the join's count of right answers.
"""

from __future__ import annotations

import re

import pytest

from probes.rows import execute
from stack.datasets import load
from tests.integration.support.datasets import remove_dataset

MIN_ACCURACY = 0.9
TEST_ROWS = 30


def run(pipeline, *args: str, timeout: float = 600) -> str:
    result = pipeline.run(*args, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def iris_model(pipeline, tmp_path_factory):
    """iris added to the stack, loaded and learned once: the trained model's path."""
    model = str(tmp_path_factory.mktemp("iris") / "latest.keras")
    run(pipeline, "stack", "add", "iris")
    try:
        run(pipeline, "loader", "--dataset", "iris", "--no-progress")
        trained = run(pipeline, "consumer.train", "--dataset", "iris", "--model", model)
        assert "read 120 records from tf.public.iris_train (120 rows)" in trained, trained[-1500:]
        yield model
    finally:
        remove_dataset(pipeline, load("iris").contract)


def right_answers(pipeline) -> int:
    """How many of iris_test's rows ``show_predictions`` joins to a right prediction (all must have one)."""
    shown = run(pipeline, "consumer.show_predictions", "--dataset", "iris", "--wait", "60")
    joined = re.search(rf"^{TEST_ROWS} rows of iris_test have a prediction; (\d+) of them are right", shown, re.M)
    assert joined, shown[-1500:]
    return int(joined.group(1))


def test_iris_is_evaluated_live_and_predicted_back_into_postgres(pipeline, iris_model):
    evaluated = run(pipeline, "consumer.evaluate", "--dataset", "iris", "--model", iris_model)
    line = re.search(rf"^evaluated {TEST_ROWS} records \(0 malformed skipped\).*accuracy ([0-9.]+),", evaluated, re.M)
    assert line and float(line.group(1)) >= MIN_ACCURACY, evaluated[-1500:]

    predicted = run(pipeline, "consumer.predict", "--dataset", "iris", "--model", iris_model)
    summary = rf"^predicted {TEST_ROWS} of {TEST_ROWS} records \(0 retracted, 0 malformed\)"
    assert re.search(summary, predicted, re.M), predicted[-1500:]
    assert right_answers(pipeline) >= MIN_ACCURACY * TEST_ROWS


def test_spark_scores_iris_with_the_same_flag(pipeline, spark_ready, iris_model, tmp_path):
    execute(pipeline.postgres, "DELETE FROM iris_predictions")  # what comes back now is Spark's
    flags = ("--dataset", "iris", "--model", iris_model, "--checkpoint-dir", str(tmp_path / "checkpoint"))
    # A bound, not a speed goal: Spark's start on 2 busy cores (see test_spark_predict.py).
    scored = run(pipeline, "consumer.spark_predict", *flags, timeout=400)
    assert re.search(rf"scored {TEST_ROWS} records in \d+ micro-batches", scored), scored[-1500:]
    assert right_answers(pipeline) >= MIN_ACCURACY * TEST_ROWS

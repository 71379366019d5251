"""The talk's second example end to end, as ``make demo DATASET=iris`` runs it: ``stack add iris``, the loader's
iris hook (scikit-learn's bundled copy, 120 train / 30 test rows), one-shot training of the MLP, live evaluation
of the test rows, predictions back into ``iris_predictions`` through the JDBC sink and ``show_predictions``'s join.
What a user sees is checked: the evaluation's accuracy line (at least 0.9), and the join's count of right answers.
"""

from __future__ import annotations

import re

import pytest

from stack.datasets import load
from tests.integration.support.datasets import remove_dataset

MIN_ACCURACY = 0.9


def run(pipeline, *args: str, timeout: float = 600) -> str:
    result = pipeline.run(*args, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture
def iris(pipeline, tmp_path):
    run(pipeline, "stack", "add", "iris")
    yield str(tmp_path / "iris" / "latest.keras")
    remove_dataset(pipeline, load("iris").contract)


def test_iris_is_learned_evaluated_and_predicted_back_into_postgres(pipeline, iris):
    run(pipeline, "loader", "--dataset", "iris", "--truncate", "--no-progress")
    trained = run(pipeline, "consumer.train", "--dataset", "iris", "--model", iris)
    assert "read 120 records from tf.public.iris_train (120 rows)" in trained, trained[-1500:]

    evaluated = run(pipeline, "consumer.evaluate", "--dataset", "iris", "--model", iris)
    line = re.search(r"^evaluated 30 records \(0 malformed skipped\).*accuracy ([0-9.]+),", evaluated, re.M)
    assert line and float(line.group(1)) >= MIN_ACCURACY, evaluated[-1500:]

    predicted = run(pipeline, "consumer.predict", "--dataset", "iris", "--model", iris)
    assert re.search(r"^predicted 30 of 30 records \(0 retracted, 0 malformed\)", predicted, re.M), predicted[-1500:]
    shown = run(pipeline, "consumer.show_predictions", "--dataset", "iris", "--wait", "60")
    joined = re.search(r"^30 rows of iris_test have a prediction; (\d+) of them are right", shown, re.M)
    assert joined and int(joined.group(1)) >= MIN_ACCURACY * 30, shown[-1500:]

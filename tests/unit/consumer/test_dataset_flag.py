"""``--dataset`` on every command: MNIST's names stay the defaults, another dataset's names follow from it, and an
unknown dataset or a flag that cannot read it is one line on stderr with exit 2, before anything is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer import evaluate, predict, show_predictions, spark_predict, train
from consumer.cli import apply_dataset
from loader.__main__ import main as loader_main

MAINS = {
    "train": train.main,
    "evaluate": evaluate.main,
    "predict": predict.main,
    "show_predictions": show_predictions.main,
    "spark_predict": spark_predict.main,
    "loader": loader_main,
}


@pytest.mark.parametrize("command", list(MAINS))
def test_an_unknown_dataset_is_one_line_and_exit_2(command, capsys):
    assert MAINS[command](["--dataset", "no-such-dataset"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-such-dataset" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_the_tfio_source_refuses_a_dataset_other_than_mnist(command, capsys):
    assert MAINS[command](["--dataset", "iris", "--source", "tfio"]) == 2
    assert capsys.readouterr().err == "error: --source tfio decodes MNIST's records only, not dataset iris's\n"


def test_mnists_names_stay_the_defaults():
    scoring = predict.build_parser().parse_args([])
    dataset = apply_dataset(scoring)
    assert dataset.name == "mnist"
    assert (scoring.topic, scoring.predictions_topic, scoring.group_id) == (
        "tf.public.mnist_test",
        "mnist.predictions",
        "mnist-predict",
    )
    assert scoring.model == Path("models/mnist/latest.keras")
    evaluating = evaluate.build_parser().parse_args([])
    apply_dataset(evaluating)
    assert evaluating.group_id == "mnist-evaluate"
    training = train.build_parser().parse_args([])
    train.apply_dataset(training)
    assert (training.topic, training.model) == ("tf.public.mnist_train", Path("models/mnist/latest.keras"))


def test_another_datasets_names_follow_from_it():
    scoring = predict.build_parser().parse_args(["--dataset", "iris"])
    apply_dataset(scoring)
    assert (scoring.topic, scoring.predictions_topic, scoring.group_id) == (
        "tf.public.iris_test",
        "iris.predictions",
        "iris-predict",
    )
    assert scoring.model == Path("models/iris/latest.keras")
    training = train.build_parser().parse_args(["--dataset", "iris"])
    train.apply_dataset(training)
    assert (training.topic, training.model) == ("tf.public.iris_train", Path("models/iris/latest.keras"))


def test_flags_given_win_over_the_datasets_defaults():
    scoring = predict.build_parser().parse_args(["--dataset", "iris", "--topic", "mine", "--group-id", "g"])
    apply_dataset(scoring)
    assert (scoring.topic, scoring.group_id) == ("mine", "g")


def test_a_model_of_another_dataset_is_refused_in_one_line(tmp_path, capsys):
    from consumer.learning.models import build_model

    file = tmp_path / "mnist.keras"
    build_model().save(file)
    assert evaluate.main(["--dataset", "iris", "--model", str(file)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "takes 784 values a record, the dataset's records hold 4" in err


def test_no_model_yet_names_the_dataset_in_the_hint(tmp_path, capsys):
    assert evaluate.main(["--dataset", "iris", "--model", str(tmp_path / "latest.keras")]) == 1
    assert capsys.readouterr().err.endswith("train one first: python -m consumer.train --dataset iris\n")

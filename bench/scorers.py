"""The scorers the benchmarks set side by side, and how each one starts: ``consumer.predict`` (in the project's
environment), Spark (``consumer.spark_predict``, the spark extra in the same environment) and Flink
(``consumer.flink_predict``, the flink extra's environment of its own). Spark and Flink are opt-in: a benchmark
leaves out the one not set up here, with a note, unless it was named on the command line."""

from __future__ import annotations

import sys
from pathlib import Path

from consumer.flink_predict import FLINK_PYTHON, flink_missing
from stack.assemble import spark_jars
from stack.config import StackConfig

OPT_IN = ("spark", "flink")
#: How many processes each scorer runs at once: two consumer.predict of one group share the partitions.
PROCESSES = {"predict": 1, "predict2": 2, "spark": 1, "flink": 1}


def spark_missing(cfg: StackConfig) -> str | None:
    """Why ``consumer.spark_predict`` cannot run here (``make setup-spark`` not run), or None."""
    try:
        import pyarrow  # noqa: F401, PLC0415 - optional (make setup-spark): whether it imports is the check
        import pyspark  # noqa: F401, PLC0415 - optional (make setup-spark): whether it imports is the check
    except ImportError as error:
        return f"{error.name} is not installed (make setup-spark)"
    return None if spark_jars(cfg) else "no Spark Kafka connector jars (make setup-spark)"


def runnable(cfg: StackConfig, wanted: list[str], named: bool) -> list[str]:
    """``wanted`` without the opt-in scorers that are not set up here (each said in a ``note:`` line); when the user
    ``named`` them, RuntimeError instead."""
    kept = list(wanted)
    missing = {"spark": spark_missing, "flink": flink_missing}
    for kind in OPT_IN:
        why = missing[kind](cfg) if kind in kept else None
        if why and named:
            raise RuntimeError(f"cannot run the {kind} scorer: {why}")
        if why:
            print(f"note: {kind.capitalize()} left out: {why}", flush=True)
            kept.remove(kind)
    return kept


def engine_command(kind: str, common: list[str], checkpoint: Path, group: str) -> list[str]:
    """The command line of Spark's or Flink's scorer: ``common`` flags, a checkpoint directory of its own and, for
    Flink, its consumer group (Spark keeps its offsets in the checkpoint alone)."""
    if kind == "spark":
        return [sys.executable, "-m", "consumer.spark_predict", *common, "--checkpoint-dir", str(checkpoint)]
    flink = [str(FLINK_PYTHON), "-m", "consumer.flink_predict", *common, "--checkpoint-dir", str(checkpoint)]
    return [*flink, "--group-id", group]

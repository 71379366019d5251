"""``bench.predict_scaling_bench`` runs in a tiny configuration, so it does not rot (like test_bench for the other
scripts). Figures are printed, never asserted. It uses topics of its own: the demo tables' row counts and the end
offsets of the demo topics, ``mnist.predictions`` included, are the same before and after."""

from __future__ import annotations

from probes.database import query_one
from probes.topics import end_offsets
from stack.contract import MNIST

DEMO_TABLES = (MNIST.train_table, MNIST.test_table, MNIST.predictions_table)
DEMO_TOPICS = (MNIST.train, MNIST.test, MNIST.predictions_topic)


def demo_data(pipeline) -> dict[str, object]:
    counts = {table: query_one(pipeline.postgres, f"SELECT count(*) FROM public.{table}")[0] for table in DEMO_TABLES}
    return {**counts, **{topic: end_offsets(pipeline.bootstrap, topic) for topic in DEMO_TOPICS}}


def test_predict_scaling_bench_runs_in_a_tiny_configuration_and_leaves_the_demo_data_alone(pipeline):
    before = demo_data(pipeline)

    result = pipeline.run(
        "bench.predict_scaling_bench", "--records", "400", "--processes", "1", "2", "--reps", "1", "--no-record",
        timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "consumer.predict as a group on 4 partitions, 400 records" in result.stdout, result.stdout
    assert "records/s" in result.stdout and "CPU s each" in result.stdout, result.stdout
    assert demo_data(pipeline) == before

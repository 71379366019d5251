"""What the demo's data looks like from outside, so a test can show that something left it alone."""

from __future__ import annotations

from probes.database import query_one
from probes.topics import end_offsets
from stack.contract import MNIST
from tests.integration.support.backend import Pipeline

DEMO_TABLES = (MNIST.train_table, MNIST.test_table)
DEMO_TOPICS = (MNIST.train, MNIST.test)


def demo_data(pipeline: Pipeline) -> dict[str, object]:
    """Rows of each demo table and the end offsets of each demo topic."""
    counts = {table: query_one(pipeline.postgres, f"SELECT count(*) FROM public.{table}")[0] for table in DEMO_TABLES}
    return {**counts, **{topic: end_offsets(pipeline.bootstrap, topic) for topic in DEMO_TOPICS}}

"""Digits on a topic of their own, and ``consumer.evaluate --follow`` reading them: the setup the dashboard and
the model-version tests share."""

from __future__ import annotations

import subprocess
import time

from tests.integration.support.backend import Pipeline


def digits_topic(pipeline: Pipeline, name: str, count: int):
    """A new topic ``<name>-<ns>`` holding the first ``count`` digits of the sample's test split, as
    ``consumer.drift_demo`` publishes them; returns the topic and the whole split (images, labels) to publish
    more of."""
    from consumer.kafka.client import KafkaClient
    from consumer.kafka.writer import write_records
    from consumer.learning.drift_scenario import sample_digits
    from consumer.records.codec import encode_records

    topic = f"{name}-{time.time_ns()}"
    images, labels = sample_digits("test")
    client = KafkaClient.of(pipeline.bootstrap)
    client.create_topic(topic)
    write_records(client, topic, encode_records(images[:count], labels[:count]))
    return topic, images, labels


def evaluate_following(pipeline: Pipeline, topic: str, model, batch_size: int, *flags: str) -> subprocess.Popen:
    """``consumer.evaluate --follow`` on ``topic`` in a group of its own, started, not waited for."""
    return pipeline.start(
        "consumer.evaluate",
        "--topic", topic,
        "--model", str(model),
        "--group-id", f"{topic}-reader",
        "--batch-size", str(batch_size),
        "--follow",
        *flags,
    )  # fmt: skip

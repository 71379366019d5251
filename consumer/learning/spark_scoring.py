"""Scoring inside Spark (``python -m consumer.spark_predict``): the ``mapInPandas`` function that turns Kafka
rows into the prediction records ``consumer.predict`` writes (a tombstone, a null value, for a deleted row; Spark's
Kafka sink writes a null value as a tombstone).

It lives in a module of its own, not in the command: cloudpickle ships a function of an importable module by
reference, so every Python worker imports this module once and keeps its model between micro-batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from consumer.cli import quiet_tensorflow
from consumer.learning.scoring import prediction_records
from consumer.records.codec import RecordFormat, decode_batch
from consumer.records.predictions import plan_batch
from consumer.store.source import ModelSource
from stack import datasets


def header_pairs(cell) -> list[tuple[str, bytes]]:
    """A Spark ``headers`` cell (``array<struct<key, value>>`` as Arrow hands it to pandas) as ``[(key, value)]``.

    >>> header_pairs([{"key": "mnist.id", "value": b"7"}, {"key": "x", "value": None}])
    [('mnist.id', b'7'), ('x', b'')]
    >>> header_pairs(None)
    []
    """
    if cell is None:
        return []
    return [(h["key"], bytes(h["value"]) if h["value"] is not None else b"") for h in cell]


class _Scorer:
    """The model a Python worker scores with: loaded on first use, again only when the store names a newer one;
    and the dataset whose records it scores, read once."""

    source = None
    datasets: dict = {}

    @classmethod
    def get(cls, model: str):
        if cls.source is None or str(cls.source.path) != model:
            cls.source = ModelSource(Path(model))
        else:
            cls.source.refresh()
        return cls.source

    @classmethod
    def dataset(cls, name: str):
        if name not in cls.datasets:
            cls.datasets[name] = datasets.load(name)
        return cls.datasets[name]


def score_batches(model: str, batches: Iterator, dataset: str = "mnist") -> Iterator:
    """``mapInPandas``' function: Kafka rows (``key``, ``value``, ``headers``) in, prediction records out, for the
    records of ``dataset`` (a name, or an absolute path to its description: the workers read it).

    One model load a worker (not a record); a deleted row gets a tombstone (null value), and a record whose headers
    name no row, or one the decode rejects, gets nothing, as in ``consumer.predict``.
    """
    quiet_tensorflow()
    import pandas as pd  # noqa: PLC0415 - pandas loads in a second; only Spark's workers need it, not --help

    source = _Scorer.get(model)
    described = _Scorer.dataset(dataset)
    fmt, names = RecordFormat.of(described), described.contract
    for frame in batches:
        values = [bytes(v) if v is not None else b"" for v in frame["value"]]
        keys = [bytes(k) if k is not None else b"" for k in frame["key"]]
        headers = [header_pairs(cell) for cell in frame["headers"]]
        decoded = decode_batch(values, keys, fmt)
        plan = plan_batch(headers, decoded.valid.tolist(), names)
        records = prediction_records(source.model, decoded.images, plan, source.version, names)
        keys_out, values_out = [key for key, _ in records], [value for _, value in records]
        yield pd.DataFrame({"key": keys_out, "value": values_out}, dtype=object)

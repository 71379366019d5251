"""Scoring inside Flink (``python -m consumer.flink_predict``): the vectorised Python function that turns a batch
of Kafka records (key, value and the four headers that name a row) into the records ``consumer.predict`` writes: a
prediction, a tombstone (null value) for a deleted row, nothing for a record whose headers name no row or that
does not decode (counted by reason).

Flink hands a pandas function the records of a bundle at once (Arrow batches of up to ``ARROW_BATCH`` records,
cut short at the bundle's end and at each checkpoint), so the model is called once a batch, as in
``consumer.predict``, instead of once a record. It lives in a module of its own, not in the command: cloudpickle
ships a class of an importable module by reference, so the Python worker imports this module and loads the model
once, in ``open()``.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

from consumer.cli import quiet_tensorflow
from consumer.learning.scoring import prediction_records
from consumer.records.codec import RecordFormat, decode_batch
from consumer.records.predictions import plan_batch
from consumer.store.source import ModelSource
from stack import datasets

try:
    import pandas as pd
    from pyflink.table.udf import ScalarFunction
except ImportError:  # the flink extra is opt-in: without it the module still imports (docs, doctests), unused
    pd, ScalarFunction = None, object

#: The most records one call of the function gets (``python.fn-execution.arrow.batch.size``): the bound
#: consumer.predict's batches have too, so one model call amortises its cost.
ARROW_BATCH = 2048
#: Seconds between two looks at the model store, and between two writes of the counts file.
REFRESH_SECONDS = 1.0


def header_pairs(names: list[str], values: tuple) -> list[tuple[str, bytes]]:
    """One record's headers as ``[(key, value)]`` from the columns that carry them (None: the record has no such
    header).

    >>> header_pairs(["mnist.table", "mnist.id", "__op"], (b"t", bytearray(b"7"), None))
    [('mnist.table', b't'), ('mnist.id', b'7')]
    """
    return [(name, bytes(value)) for name, value in zip(names, values, strict=True) if value is not None]


def read_counts(directory: Path) -> dict:
    """The counts every subtask wrote into ``directory`` (``ScoreBatches``), summed: records, predicted, retracted,
    malformed by reason, and the newest model version seen.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "0.json").write_text('{"records": 3, "predicted": 2, "retracted": 0, "malformed": {"x": 1}, '
    ...                               '"version": 1}')
    >>> read_counts(d)["malformed"], read_counts(d)["records"]
    (Counter({'x': 1}), 3)
    """
    total = {"records": 0, "predicted": 0, "retracted": 0, "malformed": Counter(), "version": None}
    for file in sorted(directory.glob("*.json")):
        try:
            counts = json.loads(file.read_text())
        except (OSError, ValueError):
            continue  # being replaced: the next look reads it
        for name in ("records", "predicted", "retracted"):
            total[name] += counts[name]
        total["malformed"].update(counts["malformed"])
        if counts.get("version") is not None:
            total["version"] = max(total["version"] or 0, counts["version"])
    return total


class ScoreBatches(ScalarFunction):
    """A pandas function: columns key, value and the row's headers (``header_names``, as ``plan_batch`` reads them)
    in, a row ``(k, v, keep)`` a record out: the record ``consumer.predict`` writes for it (``v`` None: a
    tombstone), or ``keep`` False for a malformed record. The model store's newest version is looked at once a
    second between batches.

    Counts of this run go to ``counts_dir/<subtask>.json`` (the command prints them): Python functions have no
    accumulators in PyFlink, and a file needs no service.
    """

    def __init__(self, model: str, dataset: str, counts_dir: str, header_names: list[str]) -> None:
        self.model_path, self.dataset_name, self.counts_dir = model, dataset, counts_dir
        self.header_names = header_names

    def open(self, function_context) -> None:  # noqa: ARG002 - PyFlink's signature
        quiet_tensorflow()
        described = datasets.load(self.dataset_name)
        self.fmt, self.names = RecordFormat.of(described), described.contract
        self.source = ModelSource(Path(self.model_path))
        # A Python function is not told its subtask: a file of its own per worker process and instance.
        self.counts_file = Path(self.counts_dir) / f"{os.getpid()}-{id(self)}.json"
        self.counts = {"records": 0, "predicted": 0, "retracted": 0, "malformed": Counter()}
        self.looked = time.monotonic()
        self._write_counts()

    def eval(self, keys, values, *headers):
        count = len(keys)
        decoded = decode_batch([bytes(v) if v is not None else b"" for v in values],
                               [bytes(k) if k is not None else b"" for k in keys], self.fmt)  # fmt: skip
        rows = [header_pairs(self.header_names, row) for row in zip(*headers, strict=True)]
        plan = plan_batch(rows, decoded.valid.tolist(), self.names)
        records = prediction_records(self.source.model, decoded.images, plan, self.source.version, self.names)
        out_keys, out_values, keep = [None] * count, [None] * count, [False] * count
        for position, (key, value) in zip(plan.records, records, strict=True):
            out_keys[position], out_values[position], keep[position] = key, value, True
        self.counts["records"] += count
        self.counts["retracted"] += plan.retracted
        self.counts["predicted"] += len(records) - plan.retracted
        self.counts["malformed"].update(plan.malformed)
        if time.monotonic() - self.looked >= REFRESH_SECONDS:
            self.looked = time.monotonic()
            self.source.refresh()
            self._write_counts()
        return pd.DataFrame({"k": out_keys, "v": out_values, "keep": keep})

    def close(self) -> None:
        if hasattr(self, "counts"):
            self._write_counts()

    def _write_counts(self) -> None:
        # Replaced whole, so the command never reads half a file.
        partial = self.counts_file.with_suffix(".tmp")
        partial.write_text(json.dumps({**self.counts, "version": self.source.version}))
        os.replace(partial, self.counts_file)

"""Scoring: the model's answer for a batch of decoded records, as prediction records."""

from __future__ import annotations

import time

import numpy as np

from consumer.records.predictions import Plan, prediction_key, prediction_value
from stack.contract import MNIST, Contract


def class_probabilities(model, images: np.ndarray) -> np.ndarray:
    """The model's class probabilities for a batch of decoded records, through its traced ``predict_on_batch``:
    about twice as fast as calling the model eagerly, and one trace serves every batch size once the model was
    warmed up (``consumer.store.source.warm_up``)."""
    return np.asarray(model.predict_on_batch(np.asarray(images, dtype=np.float32)))


def plan_probabilities(model, images, plan: Plan) -> np.ndarray | None:
    """The class probabilities of the images ``plan`` scores (one model call), None when it scores none. The part
    of scoring that runs in TensorFlow, outside Python's lock: a caller may run it on a thread of its own."""
    wanted = plan.images()
    if not wanted:
        return None
    chosen = np.asarray(images) if len(wanted) == len(images) else np.asarray(images)[wanted]  # no copy
    return class_probabilities(model, chosen)


def plan_records(
    plan: Plan, probabilities: np.ndarray | None, version: int | None, names: Contract = MNIST
) -> list[tuple[bytes, bytes | None]]:
    """``(key, value)`` for each change of ``plan``, in record order, given ``plan_probabilities``' answer: a
    prediction, or a tombstone (value None) for a deleted row. Order matters: a row inserted and deleted within
    one batch must end with its tombstone."""
    scored: dict[int, tuple[int, float]] = {}
    if probabilities is not None:
        predicted = np.argmax(probabilities, axis=1)
        confidence = probabilities[np.arange(len(predicted)), predicted]
        scored = dict(zip(plan.images(), zip(predicted.tolist(), confidence.tolist(), strict=True), strict=True))
    now_ms = int(time.time() * 1000)
    records: list[tuple[bytes, bytes | None]] = []
    for index, ref in plan.changes:
        value = None if index is None else prediction_value(ref, *scored[index], version, now_ms, names)
        records.append((prediction_key(ref, names), value))
    return records


def prediction_records(
    model, images, plan: Plan, version: int | None, names: Contract = MNIST
) -> list[tuple[bytes, bytes | None]]:
    """``(key, value)`` for each change of ``plan`` (``consumer.records.predictions.plan_batch``), in record order
    (``names``: the dataset's contract): a prediction scored by ``model`` (one call for the batch), or a tombstone
    (value None) for a deleted row."""
    if not plan.changes:
        return []
    return plan_records(plan, plan_probabilities(model, images, plan), version, names)

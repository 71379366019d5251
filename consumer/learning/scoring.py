"""Scoring: the model's answer for a batch of decoded records, as prediction records."""

from __future__ import annotations

import time

import numpy as np

from consumer.records.predictions import prediction_key, prediction_value


def prediction_records(model, images, rows, version: int | None) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` of one prediction record each for ``rows`` (``consumer.records.predictions.rows_to_predict``:
    ``(index into images, the row's reference)``), scored by ``model`` in one call."""
    if not rows:
        return []
    probabilities = np.asarray(model(images, training=False))
    predicted = np.argmax(probabilities, axis=1)
    confidence = probabilities[np.arange(len(predicted)), predicted]
    now_ms = int(time.time() * 1000)
    return [
        (prediction_key(ref), prediction_value(ref, predicted[i], confidence[i], version, now_ms)) for i, ref in rows
    ]

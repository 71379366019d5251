"""Predictions follow their row: a tombstone on the predictions topic deletes the prediction row (the JDBC sink's
delete.enabled=true), produced here with the Kafka client as the predictor would, read back from PostgreSQL."""

from __future__ import annotations

import time

from consumer.records.predictions import RowRef, prediction_key, prediction_value
from probes.database import query_one
from probes.deadline import poll
from probes.topics import produce
from stack.contract import MNIST

SELECT = f"SELECT predicted FROM public.{MNIST.predictions_table} WHERE source_table = %s AND id = %s"


def test_a_tombstone_deletes_the_prediction_row(pipeline):
    # An id no source row has: the row in the predictions table is this test's alone.
    ref = RowRef(MNIST.test_table, 2**40 + time.time_ns() % 2**30, None)
    now_ms = int(time.time() * 1000)
    produce(
        pipeline.bootstrap, MNIST.predictions_topic, [(prediction_key(ref), prediction_value(ref, 4, 0.8, 1, now_ms))]
    )

    def predicted():
        return query_one(pipeline.postgres, SELECT, (ref.table, ref.id))

    assert poll(lambda: predicted() is not None, 60, 0.5), "the sink never wrote the prediction"
    assert predicted() == (4,)

    produce(pipeline.bootstrap, MNIST.predictions_topic, [(prediction_key(ref), None)])

    assert poll(lambda: predicted() is None, 60, 0.5), "the tombstone left the prediction row in place"

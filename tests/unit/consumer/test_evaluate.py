"""consumer.evaluate reads a bounded topic as the table: each row's latest version once, deleted rows gone."""

from __future__ import annotations

import numpy as np

from consumer.evaluate import RunningScore, record_changes
from consumer.kafka.batches import DecodedBatch
from consumer.kafka.reader import Batch
from stack.contract import MNIST


def change(row_id: int, op: bytes) -> list[tuple[str, bytes]]:
    return [(MNIST.table_header, b"t"), (MNIST.id_header, str(row_id).encode()), ("__op", op)]


def decoded(headers: list, valid: list[bool]) -> DecodedBatch:
    raw = Batch(headers=headers, values=[b""] * len(headers))
    count = sum(valid)
    return DecodedBatch(np.zeros((count, 784)), np.zeros(count, int), len(valid) - count, lambda: None, raw,
                        np.array(valid))  # fmt: skip


def test_records_know_their_image_and_row_and_deletions_name_rows_decoded_or_not():
    batch = decoded([change(1, b"c"), change(2, b"d"), [(MNIST.id_header, b"3")], change(4, b"d"), change(5, b"u")],
                    [True, True, True, False, True])  # fmt: skip

    assert record_changes(batch) == [
        (0, ("t", 1), False),
        (1, ("t", 2), True),
        (2, None, False),
        (None, ("t", 4), True),
        (3, ("t", 5), False),
    ]


def test_as_the_table_an_update_replaces_the_row_and_a_deletion_removes_it():
    score = RunningScore(as_table=True)
    for row_id in range(1, 5):
        score.add(("t", row_id), False, 1.0)
    score.add(("t", 1), True, 0.0)
    score.add(None, True, 0.0)
    score.remove(("t", 2))

    assert (score.records, score.rows, score.deleted) == (6, 4, 1)
    assert score.accuracy == 0.5 and score.loss == 0.5


def test_following_every_record_counts_and_nothing_is_removed():
    score = RunningScore(as_table=False)
    score.add(("t", 1), False, 1.0)
    score.add(("t", 1), True, 0.0)
    score.remove(("t", 1))

    assert (score.records, score.rows, score.accuracy) == (2, 2, 0.5)

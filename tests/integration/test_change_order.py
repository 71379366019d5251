"""Every change of a row reaches its topic, on one partition, in commit order; a delete as a decodable record.

The connector partitions each change by the row's primary key (PartitionRouting before unwrap) and keeps the
label as the record key; unwrap rewrites a delete into the row's last version with ``__op=d``. Read back with
the independent reader (probes.topics), never with the consumer's own.
"""

from __future__ import annotations

import time

from consumer.kafka.client import KafkaClient
from probes.rows import csv_of, execute, insert, marked_pixels
from probes.topics import Record, end_offsets, read_from
from stack.contract import CREATE_OP, DELETE_OP, MNIST, UPDATE_OP

TRAIN = MNIST.train
TEST = MNIST.test
#: The labels each row goes through: its insert, then one update per further label.
LABELS = (1, 2, 3, 4, 5)


def records_of(pipeline, topic: str, start: dict[int, int], wanted: dict[int, int]) -> dict[int, list[Record]]:
    """The records of each row id in ``wanted`` (id -> how many to wait for) after ``start``, in offset order."""

    def by_id(records: list[Record]) -> dict[int, list[Record]]:
        found: dict[int, list[Record]] = {row_id: [] for row_id in wanted}
        for record in records:
            row_id = int(record.headers.get(MNIST.id_header, b"-1"))
            if row_id in found:
                found[row_id].append(record)
        return found

    def complete(records: list[Record]) -> bool:
        return all(len(rs) >= wanted[row_id] for row_id, rs in by_id(records).items())

    found = by_id(read_from(pipeline.bootstrap, topic, start, complete, timeout=90))
    return {row_id: sorted(rs, key=lambda r: (r.partition, r.offset)) for row_id, rs in found.items()}


def test_every_change_of_a_row_is_on_one_partition_in_commit_order(pipeline):
    start = end_offsets(pipeline.bootstrap, TRAIN)
    ids = insert(pipeline.postgres, MNIST.train_table, [(LABELS[0], marked_pixels()) for _ in range(7)])
    # One transaction per update, rows interleaved: each row's changes are spread in time among the others'. An odd
    # number of rows: a partitioner that alternates records would put a row's successive changes on different ones.
    for label in LABELS[1:]:
        for row_id in ids:
            execute(
                pipeline.postgres, f"UPDATE public.{MNIST.train_table} SET label = %s WHERE id = %s", (label, row_id)
            )

    found = records_of(pipeline, TRAIN, start, {row_id: len(LABELS) for row_id in ids})

    for row_id, records in found.items():
        assert len({r.partition for r in records}) == 1, f"row {row_id} on partitions {[r.partition for r in records]}"
        assert [int(r.key) for r in records] == list(LABELS), f"row {row_id} out of commit order"
        assert [r.headers[MNIST.op_header] for r in records] == [CREATE_OP.encode()] + [UPDATE_OP.encode()] * 4
    used = {records[0].partition for records in found.values()}
    assert len(used) == min(pipeline.config.partitions, len(ids)), f"seven rows all on partitions {used}"


def test_a_delete_arrives_as_the_rows_last_version_marked_d(pipeline):
    start = end_offsets(pipeline.bootstrap, TRAIN)
    pixels = marked_pixels(last=200)
    (row_id,) = insert(pipeline.postgres, MNIST.train_table, [(5, pixels)])
    execute(pipeline.postgres, f"UPDATE public.{MNIST.train_table} SET label = 6 WHERE id = %s", (row_id,))
    execute(pipeline.postgres, f"DELETE FROM public.{MNIST.train_table} WHERE id = %s", (row_id,))

    records = records_of(pipeline, TRAIN, start, {row_id: 3})[row_id]

    assert [r.headers.get(MNIST.op_header) for r in records] == [b"c", b"u", DELETE_OP.encode()]
    deleted = records[-1]
    assert (deleted.key, deleted.value.decode()) == (b"6", csv_of(pixels)), "the last version, decodable as any row"
    assert deleted.headers[MNIST.table_header] == MNIST.train_table.encode()
    assert deleted.headers[MNIST.commit_header].isdigit()
    assert len({r.partition for r in records}) == 1


def test_the_talks_snippet_decodes_a_topic_with_updates_and_deletes(pipeline):
    group = f"talk-changes-{time.time_ns()}"
    KafkaClient.of(pipeline.bootstrap).seed_group_offsets(group, TEST, start="latest")
    start = end_offsets(pipeline.bootstrap, TEST)
    ids = insert(pipeline.postgres, MNIST.test_table, [(d % 10, marked_pixels()) for d in range(8)])
    for row_id in ids[:3]:
        execute(pipeline.postgres, f"UPDATE public.{MNIST.test_table} SET label = 0 WHERE id = %s", (row_id,))
    for row_id in ids[3:6]:
        execute(pipeline.postgres, f"DELETE FROM public.{MNIST.test_table} WHERE id = %s", (row_id,))
    (last,) = insert(pipeline.postgres, MNIST.test_table, [(9, marked_pixels())])
    # Everything is on the topic before the snippet starts: it stops after 9 s without a record.
    assert records_of(pipeline, TEST, start, {last: 1})[last]

    # The talk's snippet, run as written in a process of its own (tfio allows one Kafka consumer a process).
    result = pipeline.run("tests.integration.support.talk_snippet", pipeline.bootstrap, group)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [str(8 + 3 + 3 + 1)], "8 inserts, 3 updates, 3 deletes, 1 insert"

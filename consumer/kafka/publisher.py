"""The transactional publisher of ``consumer.predict``: one Kafka transaction a batch, holding the batch's
records and the group's next offsets, so a read_committed reader sees a batch's output exactly when the group
moved past its input.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import KafkaException

from consumer.kafka.client import REBALANCE_CODES, KafkaClient, kafka_reason, topic_partitions

#: How long one transactional call (init, send offsets, commit, abort) may take before the run gives up.
TRANSACTION_TIMEOUT_S = 30.0
#: Records produced between two polls for delivery reports: a poll a record costs more than the produce itself.
POLL_EVERY = 1000


def transactional_id(group_id: str, instance: str | None) -> str:
    """Stable per group and named instance, so a restarted process fences its killed predecessor; without an
    instance, unique to this process, so processes of one group never fence each other. Exactly-once holds either
    way: the group's generation fences a zombie's offsets (KIP-447), and the broker aborts a dead process's open
    transaction after ``transaction.timeout.ms``.

    >>> transactional_id("mnist-predict", "0")
    'mnist-predict-0'
    >>> a, b = transactional_id("g", None), transactional_id("g", None)
    >>> a.startswith("g-") and len(a) == 14 and a != b
    True
    """
    return f"{group_id}-{instance if instance else uuid.uuid4().hex[:12]}"


class TransactionError(Exception):
    """A transaction could not be completed; the message is one line for the user."""


class Rebalanced(Exception):
    """The group rebalanced under a batch: its transaction was aborted, nothing of it is visible, and the
    partitions this process still holds must be read again from the batch's first offsets."""


class Publisher:
    """A transactional producer: one ``publish`` a batch (records and the group's offsets, atomically)."""

    def __init__(self, client: KafkaClient, txn_id: str) -> None:
        self.txn_id = txn_id
        self.producer = client.producer(
            **{
                "transactional.id": txn_id,
                # A transaction left open by a killed process blocks its partitions' offsets (and read_committed
                # readers of the predictions) until the broker aborts it: after 10 s, not the default 60 s, since
                # the next owner of those partitions (another member, or a restart without --instance, which has a
                # new transactional.id) waits for that. A restart with the same --instance aborts it at once.
                "transaction.timeout.ms": 10_000,
                # Idempotent and acks=all are implied by transactional.id; linger bounds the added latency.
                "linger.ms": 5,
                # After a commit the transaction coordinator answers the next transaction's first request with
                # CONCURRENT_TRANSACTIONS until it has written the markers; the default 100 ms back-off before
                # the retry then lands in every prediction's latency.
                "retry.backoff.ms": 5,
                "socket.connection.setup.timeout.ms": int(TRANSACTION_TIMEOUT_S * 1000),
            }
        )
        try:
            # Fences an earlier producer with this transactional.id and aborts its open transaction: must happen
            # before the reader fetches the group's offsets.
            self.producer.init_transactions(TRANSACTION_TIMEOUT_S)
        except KafkaException as error:
            raise TransactionError(
                f"cannot start transactions on Kafka at {client.servers} as {txn_id}: {kafka_reason(error)}"
            ) from None

    def publish(
        self,
        topic: str,
        records: list[tuple[bytes, bytes | None]],
        source_topic: str,
        offsets: dict[int, int],
        group_metadata: object,
    ) -> None:
        """Write ``records`` (key, value; a None value is a tombstone) to ``topic`` and commit ``offsets``
        (``{partition: next offset}`` of ``source_topic``) for the group of ``group_metadata`` in one transaction.
        ``Rebalanced`` when the group rebalanced under it (aborted), ``TransactionError`` (one line) on any other
        failure."""
        try:
            self.producer.begin_transaction()
            for n, (key, value) in enumerate(records):
                self.producer.produce(topic, key=key, value=value)
                if n % POLL_EVERY == 0:
                    self.producer.poll(0)
            self.producer.send_offsets_to_transaction(
                topic_partitions(source_topic, offsets), group_metadata, TRANSACTION_TIMEOUT_S
            )
            self._commit()
        except KafkaException as error:
            raise self._failure(error) from None

    def _failure(self, error: KafkaException) -> Exception:
        """What a failed transaction means for the caller; aborts it first when the broker requires that."""
        kafka_error = error.args[0] if error.args else None
        if kafka_error is not None and getattr(kafka_error, "txn_requires_abort", lambda: False)():
            try:
                self.producer.abort_transaction(TRANSACTION_TIMEOUT_S)
            except KafkaException:
                pass
            if kafka_error.code() in REBALANCE_CODES:
                return Rebalanced(kafka_reason(error))
            return TransactionError(
                f"transaction aborted ({kafka_reason(error)}): nothing of this batch is visible; "
                "a restart resumes at it"
            )
        if kafka_error is not None and kafka_error.fatal():
            return TransactionError(
                f"{self.txn_id} was fenced or failed fatally ({kafka_reason(error)}): another predictor with the "
                "same --group-id and --instance runs?"
            )
        return TransactionError(f"transaction failed: {kafka_reason(error)}; a restart resumes at this batch")

    def _commit(self) -> None:
        deadline = time.monotonic() + TRANSACTION_TIMEOUT_S
        while True:
            try:
                self.producer.commit_transaction(TRANSACTION_TIMEOUT_S)
                return
            except KafkaException as error:
                kafka_error = error.args[0] if error.args else None
                if kafka_error is None or not kafka_error.retriable() or time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        """Deliver what is still queued (at most 5 s)."""
        self.producer.flush(5)

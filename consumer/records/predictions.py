"""The records ``consumer.predict`` writes to ``mnist.predictions``: one a source row, pure functions, no I/O.

Debezium's JDBC sink reads them into ``public.mnist_predictions`` (postgres/04-predictions.sql) with Kafka
Connect's JsonConverter and ``schemas.enable=true``, so key and value are JSON envelopes ``{"schema", "payload"}``:

* key: a struct ``{source_table: string, id: int64}``, the table's primary key (``primary.key.mode=record_key``);
* value: ``source_table``, ``id``, ``predicted`` (int16), ``confidence`` (float32), ``model_version`` (int32, null
  for a model that is not a numbered version), ``committed_at`` and ``predicted_at``.

The two times are ``io.debezium.time.ZonedTimestamp``: an ISO-8601 string with its offset, which the JDBC sink
binds as ``TIMESTAMP WITH TIME ZONE`` (Connect's own ``Timestamp`` logical type is bound as a timestamp without
zone, read in the session's time zone). Where a row comes from travels in the record headers the source side
puts on every record (``mnist.table``, ``mnist.id`` from MnistToCsv; ``__source_ts_ms`` from unwrap).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from stack.contract import MNIST

TABLE_HEADER = MNIST.table_header
ID_HEADER = MNIST.id_header
COMMIT_HEADER = MNIST.commit_header
ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"

KEY_SCHEMA = {
    "type": "struct",
    "name": f"{MNIST.predictions_topic}.Key",
    "optional": False,
    "fields": [
        {"field": "source_table", "type": "string", "optional": False},
        {"field": "id", "type": "int64", "optional": False},
    ],
}

VALUE_SCHEMA = {
    "type": "struct",
    "name": f"{MNIST.predictions_topic}.Value",
    "optional": False,
    "fields": [
        {"field": "source_table", "type": "string", "optional": False},
        {"field": "id", "type": "int64", "optional": False},
        {"field": "predicted", "type": "int16", "optional": False},
        {"field": "confidence", "type": "float", "optional": False},
        {"field": "model_version", "type": "int32", "optional": True},
        {"field": "committed_at", "type": "string", "name": ZONED_TIMESTAMP, "version": 1, "optional": True},
        {"field": "predicted_at", "type": "string", "name": ZONED_TIMESTAMP, "version": 1, "optional": False},
    ],
}


@dataclass(frozen=True)
class RowRef:
    """Which source row a record is: its table, its id, and when its transaction committed (ms, if known)."""

    table: str
    id: int
    committed_ms: int | None


def row_ref(headers: list[tuple[str, bytes]] | None) -> RowRef | None:
    """The row a record's headers name, or None when ``mnist.table`` or ``mnist.id`` is missing or unusable.

    >>> row_ref([("mnist.table", b"mnist_test"), ("mnist.id", b"42"), ("__source_ts_ms", b"1700000000123")])
    RowRef(table='mnist_test', id=42, committed_ms=1700000000123)
    >>> row_ref([("mnist.table", b"mnist_test"), ("mnist.id", b"4x")]) is None
    True
    >>> row_ref(None) is None
    True
    """
    found = dict(headers or [])
    table, row_id, committed = found.get(TABLE_HEADER), found.get(ID_HEADER), found.get(COMMIT_HEADER)
    if not table or row_id is None or not row_id.isdigit():
        return None
    try:
        name = table.decode()
    except UnicodeDecodeError:
        return None
    committed_ms = int(committed) if committed is not None and committed.isdigit() else None
    return RowRef(name, int(row_id), committed_ms)


def zoned_timestamp(ms: int) -> str:
    """Milliseconds since the epoch as Debezium's ZonedTimestamp text (UTC, ISO-8601 with offset).

    >>> zoned_timestamp(1700000000123)
    '2023-11-14T22:13:20.123Z'
    """
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _envelope(schema: dict, payload: dict) -> bytes:
    return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":")).encode()


def prediction_key(ref: RowRef) -> bytes:
    """The record key: the prediction table's primary key, as JsonConverter reads it.

    >>> json.loads(prediction_key(RowRef("mnist_test", 7, None)))["payload"]
    {'source_table': 'mnist_test', 'id': 7}
    """
    return _envelope(KEY_SCHEMA, {"source_table": ref.table, "id": ref.id})


def prediction_value(
    ref: RowRef, predicted: int, confidence: float, model_version: int | None, predicted_ms: int
) -> bytes:
    """The record value: one row of ``mnist_predictions``.

    >>> payload = json.loads(prediction_value(RowRef("mnist_test", 7, 1700000000000), 3, 0.5, 2, 1700000000250))
    >>> payload["payload"]
    {'source_table': 'mnist_test', 'id': 7, 'predicted': 3, 'confidence': 0.5, 'model_version': 2, \
'committed_at': '2023-11-14T22:13:20.000Z', 'predicted_at': '2023-11-14T22:13:20.250Z'}
    """
    committed = zoned_timestamp(ref.committed_ms) if ref.committed_ms is not None else None
    return _envelope(
        VALUE_SCHEMA,
        {
            "source_table": ref.table,
            "id": ref.id,
            "predicted": int(predicted),
            "confidence": float(confidence),
            "model_version": model_version,
            "committed_at": committed,
            "predicted_at": zoned_timestamp(predicted_ms),
        },
    )


def key_of(key: bytes) -> tuple[str, int]:
    """``(source_table, id)`` of a prediction record's key: what makes two records the same prediction.

    >>> key_of(prediction_key(RowRef("mnist_test", 7, None)))
    ('mnist_test', 7)
    """
    payload = json.loads(key)["payload"]
    return payload["source_table"], int(payload["id"])


def rows_to_predict(
    headers: list[list[tuple[str, bytes]] | None], valid: list[bool]
) -> tuple[list[tuple[int, RowRef]], int]:
    """Which decoded images to publish, and for which row: ``([(image index, row)], records without id headers)``.

    ``headers`` and ``valid`` are per raw record; decoded images hold the valid records in order. A record that
    did not decode has no image (the decode counts it as malformed); a decoded one without usable id headers
    cannot be keyed and is counted apart.

    >>> row = lambda i: [("mnist.table", b"mnist_test"), ("mnist.id", str(i).encode())]
    >>> h = [row(1), None, row(3)]
    >>> rows, without_id = rows_to_predict(h, [True, True, False])
    >>> [(i, r.id) for i, r in rows], without_id
    ([(0, 1)], 1)
    """
    rows: list[tuple[int, RowRef]] = []
    without_id = 0
    image = 0
    for record_headers, decoded in zip(headers, valid, strict=True):
        if not decoded:
            continue
        ref = row_ref(record_headers)
        if ref is None:
            without_id += 1
        else:
            rows.append((image, ref))
        image += 1
    return rows, without_id

"""The records ``consumer.predict`` writes to ``mnist.predictions``: one a source row, pure functions, no I/O.

Debezium's JDBC sink reads them into ``public.mnist_predictions`` (postgres/04-predictions.sql) with Kafka
Connect's JsonConverter and ``schemas.enable=true``, so key and value are JSON envelopes ``{"schema", "payload"}``:

* key: a struct ``{source_table: string, id: int64}``, the table's primary key (``primary.key.mode=record_key``);
* value: ``source_table``, ``id``, ``predicted`` (int16), ``confidence`` (float32), ``model_version`` (int32, null
  for a model that is not a numbered version), ``committed_at`` and ``predicted_at``.

The two times are ``io.debezium.time.ZonedTimestamp``: an ISO-8601 string with its offset, which the JDBC sink
binds as ``TIMESTAMP WITH TIME ZONE`` (Connect's own ``Timestamp`` logical type is bound as a timestamp without
zone, read in the session's time zone). Where a row comes from travels in the record headers the source side
puts on every record (``mnist.table``, ``mnist.id`` from MnistToCsv; ``__source_ts_ms`` and ``__op`` from unwrap).

Predictions follow the row: a deleted row (``__op`` = ``d``) gets a tombstone, its key with a null value, which
the sink (``delete.enabled``) turns into a DELETE of its prediction. A record whose headers name no row (missing,
not a number, out of range) is malformed: it gets nothing, and ``plan_batch`` says why.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from stack import contract
from stack.contract import MNIST, Contract

TABLE_HEADER = MNIST.table_header
ID_HEADER = MNIST.id_header
COMMIT_HEADER = MNIST.commit_header
#: unwrap's ``add.headers=op`` header and its value for a deletion.
OP_HEADER = MNIST.op_header
DELETE_OP = contract.DELETE_OP.encode()
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Commit times a ZonedTimestamp can show: from the epoch (source.ts_ms is never earlier) to the end of year 9999.
MIN_MS = 0
MAX_MS = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc).timestamp() * 1000)
_DECIMAL = re.compile(rb"-?[0-9]+")
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


class HeaderError(ValueError):
    """A record's headers name no usable row; the message is the reason, a few words (``id out of range``)."""


def _number(raw: bytes, what: str, low: int, high: int) -> int:
    """``raw`` as a decimal integer within ``low..high``, else ``HeaderError`` saying which of the two failed."""
    if not _DECIMAL.fullmatch(raw):
        raise HeaderError(f"{what} not a number")
    value = int(raw)
    if not low <= value <= high:
        raise HeaderError(f"{what} out of range")
    return value


def row_ref(headers: list[tuple[str, bytes]] | None, names: Contract = MNIST) -> RowRef:
    """The row a record's headers name (``names``: the dataset's contract, which spells them); ``HeaderError``
    (the reason) when ``mnist.table`` or ``mnist.id`` is
    missing or unusable, or ``__source_ts_ms`` is there but no time a timestamp can show. The id is the table's
    ``bigint`` key, so it must fit in int64: a larger one would be another row's key to the sink.

    >>> row_ref([("mnist.table", b"mnist_test"), ("mnist.id", b"42"), ("__source_ts_ms", b"1700000000123")])
    RowRef(table='mnist_test', id=42, committed_ms=1700000000123)
    >>> row_ref([("mnist.table", b"mnist_test"), ("mnist.id", b"4x")])
    Traceback (most recent call last):
    ...
    consumer.records.predictions.HeaderError: id not a number
    >>> row_ref([("mnist.table", b"t"), ("mnist.id", str(2**64 + 5).encode())])
    Traceback (most recent call last):
    ...
    consumer.records.predictions.HeaderError: id out of range
    """
    found = dict(headers or [])
    table, row_id = found.get(names.table_header), found.get(names.id_header)
    committed = found.get(names.commit_header)
    if not table:
        raise HeaderError("no table header")
    if row_id is None:
        raise HeaderError("no id header")
    try:
        name = table.decode()
    except UnicodeDecodeError:
        raise HeaderError("table not UTF-8") from None
    number = _number(row_id, "id", INT64_MIN, INT64_MAX)
    committed_ms = None if committed is None else _number(committed, "commit time", MIN_MS, MAX_MS)
    return RowRef(name, number, committed_ms)


def is_delete(headers: list[tuple[str, bytes]] | None) -> bool:
    """Whether a record is a row's deletion (``__op`` = ``d``: unwrap's rewrite of a DELETE, carrying the row's
    last version).

    >>> is_delete([("__op", b"d")]), is_delete([("__op", b"u")]), is_delete(None)
    (True, False, False)
    """
    return dict(headers or []).get(OP_HEADER) == DELETE_OP


def zoned_timestamp(ms: int) -> str:
    """Milliseconds since the epoch as Debezium's ZonedTimestamp text (UTC, ISO-8601 with offset).

    >>> zoned_timestamp(1700000000123), zoned_timestamp(-500)
    ('2023-11-14T22:13:20.123Z', '1969-12-31T23:59:59.500Z')
    """
    return f"{_second_text(ms // 1000)}{ms % 1000:03d}Z"


@functools.lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    # Formatting a datetime costs more than the rest of a prediction record: a backlog's rows share their seconds.
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")


def _json_number(value: float | int | None) -> str:
    """A number as ``json.dumps`` writes it (None as null), without its call: one record a row adds up.

    >>> [_json_number(v) for v in (3, 0.1, 1e-07, None, float("nan"))]
    ['3', '0.1', '1e-07', 'null', 'NaN']
    """
    if value is None:
        return "null"
    return repr(value) if math.isfinite(value) else json.dumps(value)


@functools.cache
def _json_text(text: str) -> str:
    return json.dumps(text)


@functools.cache
def _named(predictions_topic: str, part: str) -> str:
    """The JSON of the ``part`` (``Key``/``Value``) schema named after a predictions topic
    (``mnist.predictions.Key``): the fields are every dataset's. Serialised once, not for every record."""
    schema = KEY_SCHEMA if part == "Key" else VALUE_SCHEMA
    if predictions_topic != MNIST.predictions_topic:
        schema = {**schema, "name": f"{predictions_topic}.{part}"}
    return json.dumps(schema, separators=(",", ":"))


def prediction_key(ref: RowRef, names: Contract = MNIST) -> bytes:
    """The record key: the prediction table's primary key, as JsonConverter reads it (``names``: the dataset's
    contract, which names the schema).

    >>> json.loads(prediction_key(RowRef("mnist_test", 7, None)))["payload"]
    {'source_table': 'mnist_test', 'id': 7}
    """
    schema = _named(names.predictions_topic, "Key")
    return f'{{"schema":{schema},"payload":{{"source_table":{_json_text(ref.table)},"id":{int(ref.id)}}}}}'.encode()


def prediction_value(
    ref: RowRef,
    predicted: int,
    confidence: float,
    model_version: int | None,
    predicted_ms: int,
    names: Contract = MNIST,
) -> bytes:
    """The record value: one row of the dataset's predictions table (``mnist_predictions``).

    >>> payload = json.loads(prediction_value(RowRef("mnist_test", 7, 1700000000000), 3, 0.5, 2, 1700000000250))
    >>> payload["payload"]
    {'source_table': 'mnist_test', 'id': 7, 'predicted': 3, 'confidence': 0.5, 'model_version': 2, \
'committed_at': '2023-11-14T22:13:20.000Z', 'predicted_at': '2023-11-14T22:13:20.250Z'}
    """
    committed = f'"{zoned_timestamp(ref.committed_ms)}"' if ref.committed_ms is not None else "null"
    # Written as json.dumps writes the payload dict (unit tests hold the two equal), at a third of its cost.
    return (
        f'{{"schema":{_named(names.predictions_topic, "Value")},"payload":{{"source_table":{_json_text(ref.table)},'
        f'"id":{int(ref.id)},"predicted":{int(predicted)},"confidence":{_json_number(float(confidence))},'
        f'"model_version":{_json_number(None if model_version is None else int(model_version))},'
        f'"committed_at":{committed},"predicted_at":"{zoned_timestamp(predicted_ms)}"}}}}'
    ).encode()


def key_of(key: bytes) -> tuple[str, int]:
    """``(source_table, id)`` of a prediction record's key: what makes two records the same prediction.

    >>> key_of(prediction_key(RowRef("mnist_test", 7, None)))
    ('mnist_test', 7)
    """
    payload = json.loads(key)["payload"]
    return payload["source_table"], int(payload["id"])


@dataclass
class Plan:
    """What a batch's records ask of the predictor, in record order: ``changes`` holds ``(image index, row)`` for a
    row to predict from that decoded image, ``(None, row)`` for a deleted row to retract; ``malformed`` counts the
    records that name no row or did not decode, by reason."""

    changes: list[tuple[int | None, RowRef]] = field(default_factory=list)
    malformed: Counter[str] = field(default_factory=Counter)
    #: The position among the batch's raw records of each change's record.
    records: list[int] = field(default_factory=list)

    def images(self) -> list[int]:
        """The decoded images to score, in order."""
        return [index for index, _ in self.changes if index is not None]

    @property
    def retracted(self) -> int:
        return sum(1 for index, _ in self.changes if index is None)


def plan_batch(headers: list[list[tuple[str, bytes]] | None], valid: list[bool], names: Contract = MNIST) -> Plan:
    """What to do with each raw record of a batch (``headers`` and ``valid`` are per raw record; decoded images
    hold the valid records in order; ``names``: the dataset's contract, which spells the headers). A deletion
    names its row by its headers alone: it is retracted whether or not its last version decodes.

    >>> row = lambda i, op=b"c": [("mnist.table", b"t"), ("mnist.id", str(i).encode()), ("__op", op)]
    >>> plan = plan_batch([row(1), None, row(3), row(4, b"d"), row("x")], [True, True, False, True, True])
    >>> [(i, r.id) for i, r in plan.changes], plan.records, dict(plan.malformed)
    ([(0, 1), (None, 4)], [0, 3], {'no table header': 1, 'undecodable': 1, 'id not a number': 1})
    """
    plan = Plan()
    image = 0
    for position, (record_headers, decoded) in enumerate(zip(headers, valid, strict=True)):
        index = image if decoded else None
        image += 1 if decoded else 0
        try:
            ref = row_ref(record_headers, names)
        except HeaderError as error:
            plan.malformed[str(error)] += 1
            continue
        if is_delete(record_headers):
            plan.changes.append((None, ref))
        elif index is not None:
            plan.changes.append((index, ref))
        else:
            plan.malformed["undecodable"] += 1
            continue
        plan.records.append(position)
    return plan


def describe_malformed(malformed: Counter[str]) -> str:
    """The summary's words for the malformed records: their count, then each reason's, most frequent first.

    >>> describe_malformed(Counter({"commit time out of range": 1, "id out of range": 2}))
    '3 malformed: 2 id out of range, 1 commit time out of range'
    >>> describe_malformed(Counter())
    '0 malformed'
    """
    total = sum(malformed.values())
    if not total:
        return "0 malformed"
    reasons = sorted(malformed.items(), key=lambda item: (-item[1], item[0]))
    return f"{total} malformed: " + ", ".join(f"{count} {reason}" for reason, count in reasons)

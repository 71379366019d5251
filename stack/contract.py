"""The names of the data contract, in one place: tables, topics, record headers, connectors, replication slot,
publication and the predictions' topic and table (docs/design.md, Data contract).

A dataset is one ``Contract`` instance. MNIST's names are read from the Debezium registration files beside the
compose file (``debezium/register-postgres.json``, the talk's JSON, and ``debezium/register-predictions-sink.json``),
so the Python side never spells what those files already say. Every other dataset's contract derives from its
description (``datasets/<name>.toml``, read by ``stack.datasets``), not from a copy of this module.

The other side of the contract keeps its own literals: the SQL under ``postgres/`` (tables, publication,
predictions table), the compose file (connector names) and the transform ``MnistToCsv`` (header names, the
default invalid suffix). ``tests/unit/test_contract.py`` reads them as text and fails when either side changes
alone.

This module reads two small JSON files at import time and nothing else: every component imports it, so it stays
free of Kafka, TensorFlow and database clients.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

DEBEZIUM_DIR = Path(__file__).resolve().parent.parent / "debezium"
SOURCE_JSON = DEBEZIUM_DIR / "register-postgres.json"
SINK_JSON = DEBEZIUM_DIR / "register-predictions-sink.json"

#: MnistToCsv's default ``invalid.topic.suffix``, used when the connector JSON does not set it.
DEFAULT_INVALID_SUFFIX = ".invalid"

#: The ``op_header`` values: Debezium's operation codes (create, update, delete, snapshot read). A delete arrives as
#: the row's last version, a normal record, marked only by this header.
CREATE_OP, UPDATE_OP, DELETE_OP, READ_OP = "c", "u", "d", "r"


@dataclass(frozen=True)
class Contract:
    """The names one dataset's pipeline agrees on.

    >>> c = Contract("digits", {"train": "digits_train", "test": "digits_test"}, topic_prefix="tf",
    ...              connector="digits-connector", slot="digits_slot", publication="digits_publication")
    >>> c.table("train"), c.topic("test"), c.of_table("digits_test")
    ('digits_train', 'tf.public.digits_test', 'tf.public.digits_test')
    >>> c.invalid(c.train), c.predictions_topic, c.predictions_table
    ('tf.public.digits_train.invalid', 'digits.predictions', 'digits_predictions')
    >>> c.table_header, c.id_header, c.commit_header, c.error_header, c.op_header
    ('digits.table', 'digits.id', '__source_ts_ms', 'digits.error', '__op')
    """

    #: The dataset's name: the stem of its header names and of the predictions' topic and table.
    dataset: str
    #: Split -> table (in ``schema``), e.g. ``{"train": "mnist_train", "test": "mnist_test"}``; read-only.
    splits: Mapping[str, str] = field(hash=False)
    #: Debezium's ``topic.prefix``: topics are ``<topic_prefix>.<schema>.<table>``.
    topic_prefix: str
    #: The source connector's name in Kafka Connect.
    connector: str
    #: The logical replication slot and the publication the source connector reads.
    slot: str
    publication: str
    #: The transform's ``invalid.topic.suffix``: rows it cannot convert go to ``<topic><invalid_suffix>``.
    invalid_suffix: str = DEFAULT_INVALID_SUFFIX
    schema: str = "public"
    #: The header ExtractNewRecordState adds for ``add.headers=source.ts_ms``: the row's commit time (ms).
    commit_header: str = "__source_ts_ms"
    #: The header ExtractNewRecordState adds for ``add.headers=op``: the change's operation (``DELETE_OP`` ...).
    op_header: str = "__op"
    #: The JDBC sink connector that writes the predictions topic into the predictions table, and those two; left
    #: empty: ``<dataset>-predictions-sink``, ``<dataset>.predictions`` and ``<dataset>_predictions``.
    sink_connector: str = ""
    predictions_topic: str = ""
    predictions_table: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "splits", MappingProxyType(dict(self.splits)))
        defaults = {
            "sink_connector": f"{self.dataset}-predictions-sink",
            "predictions_topic": f"{self.dataset}.predictions",
            "predictions_table": f"{self.dataset}_predictions",
        }
        for name, default in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, default)

    @classmethod
    def from_files(
        cls, dataset: str, splits: Mapping[str, str], source_json: Path = SOURCE_JSON, sink_json: Path = SINK_JSON
    ) -> Contract:
        """The contract of ``dataset`` whose tables are ``splits``, with the names its connector JSONs give.

        >>> MNIST.topic_prefix, MNIST.connector, MNIST.slot, MNIST.publication, MNIST.sink_connector
        ('tf', 'mnist-connector', 'mnist_slot', 'mnist_publication', 'mnist-predictions-sink')
        """
        source = json.loads(source_json.read_text())
        sink = json.loads(sink_json.read_text())
        config = source["config"]
        return cls(
            dataset=dataset,
            splits=splits,
            topic_prefix=config["topic.prefix"],
            connector=source["name"],
            slot=config["slot.name"],
            publication=config["publication.name"],
            invalid_suffix=_invalid_suffix(config),
            sink_connector=sink["name"],
            predictions_topic=sink["config"]["topics"],
            predictions_table=sink["config"]["collection.name.format"],
        )

    def table(self, split: str) -> str:
        """The table of ``split`` (``train``, ``test``); KeyError for a split the dataset does not have."""
        return self.splits[split]

    @property
    def tables(self) -> tuple[str, ...]:
        """The dataset's tables, in split order, each once (a dataset may learn from and score one table).

        >>> MNIST.tables
        ('mnist_train', 'mnist_test')
        >>> Contract("o", {"train": "o", "test": "o"}, "tf", "c", "s", "p").tables
        ('o',)
        """
        return tuple(dict.fromkeys(self.splits.values()))

    @property
    def train_table(self) -> str:
        """The training table, ``table("train")``: SQL in f-strings reads it without nested quotes."""
        return self.table("train")

    @property
    def test_table(self) -> str:
        """The test table, ``table("test")``."""
        return self.table("test")

    def of_table(self, table: str, schema: str | None = None) -> str:
        """The topic Debezium writes the rows of ``schema.table`` to (any table the connector captures).

        >>> MNIST.of_table("mnist_bench_soak")
        'tf.public.mnist_bench_soak'
        """
        return f"{self.topic_prefix}.{schema or self.schema}.{table}"

    def topic(self, split: str) -> str:
        """The topic of ``split``'s table.

        >>> MNIST.topic("test")
        'tf.public.mnist_test'
        """
        return self.of_table(self.table(split))

    @property
    def train(self) -> str:
        """The training topic."""
        return self.topic("train")

    @property
    def test(self) -> str:
        """The test topic."""
        return self.topic("test")

    def invalid(self, topic: str) -> str:
        """Where the transform puts the rows of ``topic`` it cannot convert.

        >>> MNIST.invalid(MNIST.train)
        'tf.public.mnist_train.invalid'
        """
        return topic + self.invalid_suffix

    def data_topics(self) -> tuple[str, ...]:
        """Every topic of the pipeline, as ``python -m stack up`` creates them: each table's topic, each one's
        invalid topic, the predictions topic.

        >>> MNIST.data_topics()  # doctest: +NORMALIZE_WHITESPACE
        ('tf.public.mnist_train', 'tf.public.mnist_test', 'tf.public.mnist_train.invalid',
         'tf.public.mnist_test.invalid', 'mnist.predictions')
        """
        topics = tuple(self.of_table(table) for table in self.tables)
        return (*topics, *(self.invalid(topic) for topic in topics), self.predictions_topic)

    def replayed_topics(self) -> tuple[str, ...]:
        """The topics training replays, kept with ``DATA_RETENTION_MS``: each table's topic and its invalid topic
        (the predictions topic is derived, not replayed).

        >>> MNIST.replayed_topics()  # doctest: +NORMALIZE_WHITESPACE
        ('tf.public.mnist_train', 'tf.public.mnist_test', 'tf.public.mnist_train.invalid',
         'tf.public.mnist_test.invalid')
        """
        return tuple(topic for topic in self.data_topics() if topic != self.predictions_topic)

    @property
    def table_header(self) -> str:
        """The header naming a record's source table (MnistToCsv's ``TABLE_HEADER``)."""
        return f"{self.dataset}.table"

    @property
    def id_header(self) -> str:
        """The header holding a record's source row id (MnistToCsv's ``ID_HEADER``)."""
        return f"{self.dataset}.id"

    @property
    def error_header(self) -> str:
        """The header with the reason a record is on an invalid topic (MnistToCsv's ``ERROR_HEADER``)."""
        return f"{self.dataset}.error"

    @property
    def server_slot(self) -> str:
        """Debezium Server's own replication slot, apart from the Connect connector's ``slot``.

        >>> MNIST.server_slot
        'mnist_server_slot'
        """
        return f"{self.dataset}_server_slot"


def _invalid_suffix(config: Mapping[str, str]) -> str:
    """The ``invalid.topic.suffix`` of the transform that sets one, else the transform's default."""
    suffixes = [value for key, value in config.items() if key.endswith(".invalid.topic.suffix")]
    return suffixes[0] if suffixes else DEFAULT_INVALID_SUFFIX


#: MNIST, the built-in dataset and every command's default.
MNIST = Contract.from_files("mnist", {"train": "mnist_train", "test": "mnist_test"})

"""A dataset description (``datasets/<name>.toml``) read and checked into a ``Dataset``.

Every check fails with one ``DatasetError`` line, ``<file>: <field>: <reason>``, naming the field to fix. Nothing
here touches a service: the SQL and the connector registrations derive from the ``Dataset`` in their own modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from stack.config import REPO_ROOT
from stack.contract import MNIST, Contract
from stack.datasets import registration, schema

#: Where the built-in descriptions live; ``load(name)`` reads ``DATASETS_DIR / f"{name}.toml"``.
DATASETS_DIR = REPO_ROOT / "datasets"

#: A feature's SQL types: the numeric ones become one value each, ``bytea`` an image of ``shape`` bytes.
NUMERIC_SQL = ("smallint", "integer", "bigint", "real", "double precision", "numeric")
IMAGE_SQL = "bytea"
#: A label's SQL types: its text (a number's decimal text) must be one of the classes.
LABEL_SQL = ("text", "varchar", "smallint", "integer", "bigint")
#: The model families ``consumer`` builds; anything else must name a builder as ``package.module:function``.
MODEL_FAMILIES = ("cnn", "mlp")
BUILDER = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
#: A lower-case SQL identifier. A dataset's name is at most 40 characters so that its longest derived name
#: (``<name>-predictions-sink``, ``<name>_publication``) stays within PostgreSQL's 63.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
NAME_MAX, IDENTIFIER_MAX = 40, 63
FIELDS = {
    "": ("name", "model", "loader", "tables", "label", "features"),
    "tables": ("train", "test", "key"),
    "label": ("column", "sql", "classes"),
    "features": ("column", "sql", "shape"),
}


class DatasetError(ValueError):
    """A description that cannot be used: ``<file>: <field>: <reason>``, one line."""


@dataclass(frozen=True)
class Feature:
    """One feature column: numeric (one value) or a ``bytea`` image of ``shape`` = (height, width) bytes.

    >>> Feature("pixels", "bytea", (28, 28)).size, Feature("sepal_length", "real").size
    (784, 1)
    """

    column: str
    sql: str
    shape: tuple[int, int] | None = None

    @property
    def is_image(self) -> bool:
        """True for a ``bytea`` image (its values are unsigned bytes)."""
        return self.shape is not None

    @property
    def size(self) -> int:
        """How many values the feature gives a record: height x width for an image, else 1."""
        return self.shape[0] * self.shape[1] if self.shape else 1


@dataclass(frozen=True)
class Dataset:
    """A checked description; every name the pipeline uses for it derives from these fields (``contract``).

    >>> iris = load("iris")
    >>> iris.num_features, iris.num_classes, iris.image_shape, iris.scale, iris.contract.connector
    (4, 3, None, 1.0, 'iris-connector')
    >>> mnist = load("mnist")
    >>> mnist.num_features, mnist.image_shape, round(mnist.scale * 255, 6), mnist.contract is MNIST
    (784, (28, 28, 1), 1.0, True)
    """

    name: str
    path: Path
    model: str
    loader: str | None
    train: str
    test: str
    key: str
    label: str
    label_sql: str
    classes: tuple[str, ...]
    features: tuple[Feature, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_features(self) -> int:
        """The values a record carries: 784 for MNIST's image, 4 for iris."""
        return sum(feature.size for feature in self.features)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        """(height, width, 1) when the feature is an image, else None."""
        images = [feature.shape for feature in self.features if feature.shape]
        return (*images[0], 1) if images else None

    @property
    def scale(self) -> float:
        """What a decoded value is multiplied by: 1/255 for image bytes, 1.0 for numeric columns."""
        return 1 / 255 if self.image_shape else 1.0

    @property
    def is_mnist(self) -> bool:
        """MNIST keeps the talk's names and the SQL of ``postgres/``."""
        return self.name == MNIST.dataset

    @property
    def contract(self) -> Contract:
        """The names of topics, headers, connectors, slot, publication and predictions (docs/datasets.md)."""
        if self.is_mnist:
            return MNIST
        return Contract(
            self.name,
            {"train": self.train, "test": self.test},
            topic_prefix=MNIST.topic_prefix,
            connector=f"{self.name}-connector",
            slot=f"{self.name}_slot",
            publication=f"{self.name}_publication",
        )

    @property
    def tables(self) -> tuple[str, ...]:
        """The dataset's tables, once each (``test`` may equal ``train``)."""
        return tuple(dict.fromkeys((self.train, self.test)))

    def tables_sql(self) -> str:
        """Idempotent SQL for the tables, their grants to debezium and the dataset's publication."""
        return schema.tables_sql(self)

    def predictions_sql(self) -> str:
        """Idempotent SQL for the predictions table and the sink's rights on it."""
        return schema.predictions_sql(self)

    def source_registration(self, settings) -> dict:
        """The source connector's Kafka Connect registration ``{"name", "config"}`` for ``settings``
        (a ``stack.config.StackConfig``)."""
        return registration.source_registration(self, settings)

    def sink_registration(self, settings) -> dict:
        """The predictions sink's Kafka Connect registration ``{"name", "config"}``."""
        return registration.sink_registration(self, settings)


def available() -> tuple[str, ...]:
    """The names of the descriptions in ``datasets/``.

    >>> available()
    ('iris', 'mnist')
    """
    return tuple(sorted(path.stem for path in DATASETS_DIR.glob("*.toml")))


def path_of(name_or_path: str | Path) -> Path:
    """The file ``load`` reads: a path as given (it has a ``/`` or ends in ``.toml``), else ``datasets/NAME.toml``."""
    text = str(name_or_path)
    if "/" in text or text.endswith(".toml"):
        return Path(text)
    return DATASETS_DIR / f"{text}.toml"


def load(name_or_path: str | Path) -> Dataset:
    """The dataset a name in ``datasets/`` or a path to a ``.toml`` describes; ``DatasetError`` when it cannot be
    used.

    >>> load("nosuch")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    stack.datasets.description.DatasetError: .../datasets/nosuch.toml: file: no such file (datasets: iris, mnist)
    """
    path = path_of(name_or_path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: file: no such file (datasets: {', '.join(available())})") from None
    except OSError as error:
        raise DatasetError(f"{path}: file: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: toml: {error}") from None
    return _Reader(path).dataset(document)


class _Reader:
    """Checks one document's fields, each failure a ``DatasetError`` naming the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, reason: str) -> DatasetError:
        return DatasetError(f"{self.path}: {field}: {reason}")

    def dataset(self, document: Mapping) -> Dataset:
        self.known(document, "")
        name = self.identifier(document, "name", NAME_MAX)
        if self.path.parent.resolve() == DATASETS_DIR.resolve() and name != self.path.stem:
            raise self.fail("name", f"{name!r} differs from the file's name {self.path.stem!r}")
        tables = self.table("tables", document.get("tables"))
        label = self.table("label", document.get("label"))
        dataset = Dataset(
            name=name,
            path=self.path,
            model=self.model(document),
            loader=self.optional_text(document, "loader"),
            train=self.identifier(tables, "tables.train"),
            test=self.identifier(tables, "tables.test"),
            key=self.identifier(tables, "tables.key"),
            label=self.identifier(label, "label.column"),
            label_sql=self.sql(label, "label.sql", LABEL_SQL),
            classes=self.classes(label),
            features=self.features(document.get("features")),
        )
        self.distinct_columns(dataset)
        return dataset

    def known(self, table: Mapping, section: str, where: str = "") -> None:
        prefix = where or (f"{section}." if section else "")
        for key in table:
            if key not in FIELDS[section]:
                raise self.fail(f"{prefix}{key}", "unknown field")

    def table(self, field: str, value: object) -> Mapping:
        if value is None:
            raise self.fail(field, "missing")
        if not isinstance(value, Mapping):
            raise self.fail(field, "must be a table")
        self.known(value, field)
        return value

    def text(self, table: Mapping, field: str) -> str:
        value = table.get(field.rsplit(".", 1)[-1])
        if value is None:
            raise self.fail(field, "missing")
        if not isinstance(value, str) or not value:
            raise self.fail(field, "must be a non-empty string")
        return value

    def optional_text(self, table: Mapping, field: str) -> str | None:
        return self.text(table, field) if field in table else None

    def identifier(self, table: Mapping, field: str, longest: int = IDENTIFIER_MAX) -> str:
        value = self.text(table, field)
        if not IDENTIFIER.fullmatch(value) or len(value) > longest:
            raise self.fail(
                field, f"{value!r} is not a lower-case SQL identifier (a-z, 0-9, _; at most {longest} characters)"
            )
        return value

    def model(self, document: Mapping) -> str:
        model = self.text(document, "model")
        if model not in MODEL_FAMILIES and not BUILDER.fullmatch(model):
            raise self.fail("model", f"unknown model family {model!r} (cnn, mlp or package.module:function)")
        return model

    def sql(self, table: Mapping, field: str, allowed: tuple[str, ...]) -> str:
        value = " ".join(self.text(table, field).lower().split())
        if value not in allowed:
            raise self.fail(field, f"unknown SQL type {value!r} (one of: {', '.join(allowed)})")
        return value

    def classes(self, label: Mapping) -> tuple[str, ...]:
        classes = label.get("classes")
        if classes is None:
            raise self.fail("label.classes", "missing")
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise self.fail("label.classes", "must be a list of non-empty strings")
        if not classes:
            raise self.fail("label.classes", "empty: a label needs at least one class")
        if len(set(classes)) != len(classes):
            raise self.fail("label.classes", "a class is listed twice")
        if any("," in c for c in classes):
            # The transform's label.classes option is a comma-separated list.
            raise self.fail("label.classes", "a class may not contain a comma")
        return tuple(classes)

    def features(self, value: object) -> tuple[Feature, ...]:
        if value is None:
            raise self.fail("features", "missing")
        if not isinstance(value, list) or not all(isinstance(f, Mapping) for f in value):
            raise self.fail("features", "must be an array of tables ([[features]])")
        if not value:
            raise self.fail("features", "empty: a dataset needs at least one feature column")
        features = tuple(self.feature(f, f"features[{index}]") for index, f in enumerate(value))
        if any(f.is_image for f in features) and len(features) > 1:
            raise self.fail("features", "an image (bytea) feature must be the dataset's only feature")
        return features

    def feature(self, table: Mapping, where: str) -> Feature:
        self.known(table, "features", f"{where}.")
        column = self.identifier(table, f"{where}.column")
        sql = self.sql(table, f"{where}.sql", (*NUMERIC_SQL, IMAGE_SQL))
        shape = table.get("shape")
        if sql != IMAGE_SQL:
            if shape is not None:
                raise self.fail(f"{where}.shape", "only a bytea (image) feature has a shape")
            return Feature(column, sql)
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
        ):
            raise self.fail(f"{where}.shape", "a bytea feature needs shape = [height, width] (positive integers)")
        return Feature(column, sql, (shape[0], shape[1]))

    def distinct_columns(self, dataset: Dataset) -> None:
        columns = [dataset.key, dataset.label, *(f.column for f in dataset.features)]
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise self.fail("columns", f"duplicate column {twice[0]!r} (key, label and features must differ)")

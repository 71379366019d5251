"""STAND-IN for the ``datasets`` branch's package (api.md's interface, nothing more): the lead's merge takes that
branch's version of ``stack/datasets/``. MNIST and iris are described here in Python; a path to a ``.toml`` file
is read with ``tomllib``. Only what the model side and the loader use is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stack.contract import MNIST, Contract

ROOT = Path(__file__).resolve().parent.parent.parent / "datasets"


class DatasetError(ValueError):
    """A description that cannot be used: ``<file>: <field>: <reason>``."""


@dataclass(frozen=True)
class Feature:
    column: str
    sql: str
    shape: tuple[int, int] | None = None

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] if self.shape else 1

    @property
    def is_image(self) -> bool:
        return self.shape is not None


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    model: str
    loader: str | None
    tables: dict[str, str] = field(hash=False)
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
        return sum(feature.size for feature in self.features)

    @property
    def image_shape(self) -> tuple[int, int, int] | None:
        images = [feature for feature in self.features if feature.is_image]
        return (*images[0].shape, 1) if len(images) == 1 and len(self.features) == 1 else None

    @property
    def scale(self) -> float:
        return 1 / 255 if self.image_shape else 1.0

    def tables_sql(self) -> str:
        columns = ", ".join(f"{f.column} {f.sql}" for f in self.features)
        return "".join(
            f"CREATE TABLE IF NOT EXISTS public.{table} ({self.key} SERIAL PRIMARY KEY, {self.label} {self.label_sql}, "
            f"{columns});\n"
            for table in dict.fromkeys(self.tables.values())
        )

    @property
    def contract(self) -> Contract:
        if self.name == "mnist":
            return MNIST
        return Contract(
            self.name, self.tables, topic_prefix="tf", connector=f"{self.name}-connector",
            slot=f"{self.name}_slot", publication=f"{self.name}_publication",
        )  # fmt: skip


_IRIS = {
    "name": "iris",
    "model": "mlp",
    "loader": "iris",
    "tables": {"train": "iris_train", "test": "iris_test", "key": "id"},
    "label": {
        "column": "iris_class",
        "sql": "text",
        "classes": ["Iris-setosa", "Iris-versicolor", "Iris-virginica"],
    },
    "features": [
        {"column": column, "sql": "real"} for column in ("sepal_length", "sepal_width", "petal_length", "petal_width")
    ],
}
_MNIST = {
    "name": "mnist",
    "model": "cnn",
    "loader": "mnist",
    "tables": {"train": "mnist_train", "test": "mnist_test", "key": "id"},
    "label": {"column": "label", "sql": "smallint", "classes": [str(digit) for digit in range(10)]},
    "features": [{"column": "pixels", "sql": "bytea", "shape": [28, 28]}],
}
_BUILT_IN = {"iris": _IRIS, "mnist": _MNIST}


def available() -> tuple[str, ...]:
    return tuple(sorted(_BUILT_IN))


def load(name_or_path: str) -> Dataset:
    """The dataset a name or a ``.toml`` path describes; ``DatasetError`` (one line) else."""
    if name_or_path in _BUILT_IN:
        return _build(_BUILT_IN[name_or_path], ROOT / f"{name_or_path}.toml")
    path = Path(name_or_path)
    if path.suffix != ".toml":
        raise DatasetError(f"{name_or_path}: no such dataset (available: {', '.join(available())})")
    import tomllib  # noqa: PLC0415

    try:
        return _build(tomllib.loads(path.read_text()), path)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        raise DatasetError(f"{path}: {error}") from None


def _build(raw: dict, path: Path) -> Dataset:
    tables = raw["tables"]
    return Dataset(
        name=raw["name"],
        path=path,
        model=raw.get("model", "mlp"),
        loader=raw.get("loader"),
        tables={"train": tables["train"], "test": tables["test"]},
        key=tables.get("key", "id"),
        label=raw["label"]["column"],
        label_sql=raw["label"]["sql"],
        classes=tuple(raw["label"]["classes"]),
        features=tuple(
            Feature(f["column"], f["sql"], tuple(f["shape"]) if "shape" in f else None) for f in raw["features"]
        ),
    )

"""A dataset's Kafka Connect registrations: its own Debezium source connector and its own predictions sink.

Both derive from the talk's files beside the compose file (``debezium/register-postgres.json``,
``debezium/register-predictions-sink.json``): a dataset changes only its names, its tables and the transform (the
generic ``RowToCsv`` with the description's columns and classes), and the stack's settings fill in host, port,
database and partitions exactly as for MNIST (``stack.connect``). One source connector a dataset, with its own
slot and publication, so adding one never reconfigures or restarts another's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from stack import connect
from stack.contract import SINK_JSON, SOURCE_JSON

if TYPE_CHECKING:
    from stack.config import StackConfig
    from stack.datasets.description import Dataset

#: The generic row -> CSV transform (debezium/mnist-smt) and its name in a dataset's ``transforms`` chain.
ROW_TO_CSV = "io.debezium.transforms.RowToCsv"
TRANSFORM = "csv"
#: MNIST's transform in the talk's JSON, which a dataset's chain replaces with ``TRANSFORM``.
MNIST_TRANSFORM = "mnist"
#: PartitionRouting's setting of the field it hashes (``change.<key>``: the row's primary key).
PAYLOAD_FIELDS_SETTING = ".partition.payload.fields"


def source_registration(dataset: Dataset, settings: StackConfig) -> dict:
    """``{"name", "config"}`` of the dataset's Debezium source connector; MNIST's is the talk's JSON as the stack
    registers it."""
    if dataset.is_mnist:
        return {"name": dataset.contract.connector, "config": connect.connector_config(settings)}
    template = json.loads(SOURCE_JSON.read_text())["config"]
    return {"name": dataset.contract.connector, "config": connect.source_config(settings, source(dataset, template))}


def sink_registration(dataset: Dataset, settings: StackConfig) -> dict:
    """``{"name", "config"}`` of the JDBC sink that writes the dataset's predictions topic into its table."""
    contract = dataset.contract
    if dataset.is_mnist:
        return {"name": contract.sink_connector, "config": connect.sink_config(settings)}
    config = dict(json.loads(SINK_JSON.read_text())["config"])
    config["topics"] = contract.predictions_topic
    config["collection.name.format"] = contract.predictions_table
    return {"name": contract.sink_connector, "config": connect.jdbc_config(settings, config)}


def source(dataset: Dataset, template: Mapping[str, str]) -> dict[str, str]:
    """The talk's source config ``template`` with the dataset's slot, publication, tables and transform."""
    contract = dataset.contract
    prefix = f"transforms.{MNIST_TRANSFORM}."
    config = {key: value for key, value in template.items() if not key.startswith(prefix)}
    tables = ",".join(f"{contract.schema}.{table}" for table in dataset.tables)
    chain = [
        TRANSFORM if name.strip() == MNIST_TRANSFORM else name.strip() for name in template["transforms"].split(",")
    ]
    config.update(
        {
            "slot.name": contract.slot,
            "publication.name": contract.publication,
            "table.include.list": tables,
            "snapshot.include.collection.list": tables,
            "transforms": ",".join(chain),
            # Debezium names its JMX metrics after topic.prefix, which every dataset shares ("tf"): without a tag
            # of its own, a second connector in the worker waits a minute per metric for the first's names to go.
            "custom.metric.tags": f"dataset={dataset.name}",
        }
    )
    for key in config:
        if key.startswith("transforms.") and key.endswith(PAYLOAD_FIELDS_SETTING):
            config[key] = f"change.{dataset.key}"
    options = transform_options(dataset, template.get(prefix + "null.value.handling", "passthrough"))
    config.update({f"transforms.{TRANSFORM}.{option}": value for option, value in options.items()})
    return config


def transform_options(dataset: Dataset, null_handling: str = "passthrough") -> dict[str, str]:
    """RowToCsv's options for the dataset: its feature columns in order, label, classes, key and header prefix.

    >>> from stack.datasets import load
    >>> transform_options(load("iris"))["label.classes"]
    'Iris-setosa,Iris-versicolor,Iris-virginica'
    """
    options = {
        "type": ROW_TO_CSV,
        "feature.fields": ",".join(feature.column for feature in dataset.features),
        "label.field": dataset.label,
        "label.classes": ",".join(dataset.classes),
        "id.field": dataset.key,
        "header.prefix": dataset.name,
    }
    images = [feature for feature in dataset.features if feature.is_image]
    if images:
        options["bytes.length"] = str(images[0].size)
    options["invalid.topic.suffix"] = dataset.contract.invalid_suffix
    options["null.value.handling"] = null_handling
    return options

"""Dataset descriptions: every refusal is one line naming file and field; what derives from iris (names, SQL,
registrations); MNIST's registrations are exactly what the stack registered before descriptions existed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stack import connect
from stack.config import StackConfig
from stack.contract import MNIST
from stack.datasets import DATASETS_DIR, DatasetError, Feature, available, load

ROOT = Path(__file__).resolve().parents[3]
CFG = StackConfig.from_env({"PGPORT": "6543", "TOPIC_PARTITIONS": "3"})

IRIS = (DATASETS_DIR / "iris.toml").read_text()


def write(tmp_path: Path, text: str, name: str = "flowers.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def variant(old: str, new: str) -> str:
    """The iris description with ``old`` replaced by ``new`` (once, and it must be there)."""
    assert old in IRIS, old
    return IRIS.replace(old, new, 1)


def test_the_built_in_datasets_are_iris_and_mnist():
    assert available() == ("iris", "mnist")


def test_iris_reads_as_its_description_says():
    iris = load("iris")

    assert (iris.name, iris.model, iris.loader, iris.key, iris.label, iris.label_sql) == (
        "iris",
        "mlp",
        "iris",
        "id",
        "iris_class",
        "text",
    )
    assert iris.classes == ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
    assert iris.features == tuple(
        Feature(column, "real") for column in ("sepal_length", "sepal_width", "petal_length", "petal_width")
    )
    assert (iris.num_classes, iris.num_features, iris.image_shape, iris.scale) == (3, 4, None, 1.0)
    assert iris.path == DATASETS_DIR / "iris.toml"


def test_mnist_is_one_image_of_28_by_28_bytes_scaled_by_1_255():
    mnist = load("mnist")

    assert mnist.features == (Feature("pixels", "bytea", (28, 28)),)
    assert mnist.features[0].is_image and mnist.features[0].size == 784
    assert (mnist.num_classes, mnist.num_features, mnist.image_shape) == (10, 784, (28, 28, 1))
    assert mnist.scale == pytest.approx(1 / 255)
    assert (mnist.model, mnist.loader, mnist.classes[7]) == ("cnn", "mnist", "7")


def test_a_path_loads_like_a_name(tmp_path):
    path = write(tmp_path, variant('name = "iris"', 'name = "flowers"'))

    assert load(str(path)).name == "flowers"
    assert load(path).contract.connector == "flowers-connector"


def test_iris_derives_every_name_from_its_own():
    contract = load("iris").contract

    assert (contract.train, contract.test) == ("tf.public.iris_train", "tf.public.iris_test")
    assert contract.invalid(contract.train) == "tf.public.iris_train.invalid"
    assert (contract.connector, contract.slot, contract.publication) == (
        "iris-connector",
        "iris_slot",
        "iris_publication",
    )
    assert (contract.table_header, contract.id_header, contract.error_header) == ("iris.table", "iris.id", "iris.error")
    assert (contract.commit_header, contract.op_header) == ("__source_ts_ms", "__op")
    assert (contract.predictions_topic, contract.predictions_table, contract.sink_connector) == (
        "iris.predictions",
        "iris_predictions",
        "iris-predictions-sink",
    )


def test_mnists_contract_is_the_talks():
    assert load("mnist").contract is MNIST


# --- refusals: one line, "<file>: <field>: <reason>" ---------------------------------------------------------------


def refusal(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(DatasetError) as raised:
        load(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_a_missing_file_names_the_datasets_there_are(tmp_path):
    with pytest.raises(DatasetError) as raised:
        load("nosuch")
    assert str(raised.value) == f"{DATASETS_DIR / 'nosuch.toml'}: file: no such file (datasets: iris, mnist)"

    with pytest.raises(DatasetError, match=r"/gone\.toml: file: no such file"):
        load(tmp_path / "gone.toml")


def test_bad_toml_says_where(tmp_path):
    assert refusal(tmp_path, 'name = "iris\n').startswith("toml: ")


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('name = "iris"\n', "", "name: missing"),
        ('model = "mlp"\n', "", "model: missing"),
        ('train = "iris_train"\n', "", "tables.train: missing"),
        ('key = "id"\n', "", "tables.key: missing"),
        ('column = "iris_class"\n', "", "label.column: missing"),
        ('sql = "text"\n', "", "label.sql: missing"),
        ('classes = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]\n', "", "label.classes: missing"),
        ('column = "sepal_length"\n', "", "features[0].column: missing"),
        ('name = "iris"', "name = 3", "name: must be a non-empty string"),
    ],
)
def test_a_missing_or_mistyped_field_is_named(tmp_path, old, new, expected):
    assert refusal(tmp_path, variant(old, new)) == expected


def test_a_section_that_is_not_a_table_is_refused(tmp_path):
    assert refusal(tmp_path, 'name = "x"\nmodel = "mlp"\ntables = 1\n') == "tables: must be a table"


def test_no_features_at_all_is_refused(tmp_path):
    text = IRIS[: IRIS.index("[[features]]")]
    assert refusal(tmp_path, text) == "features: missing"


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ('sql = "text"', 'sql = "json"', "label.sql: unknown SQL type 'json' (one of: "),
        ('sql = "real"', 'sql = "float8"', "features[0].sql: unknown SQL type 'float8' (one of: "),
    ],
)
def test_an_unknown_sql_type_is_refused(tmp_path, old, new, expected):
    assert refusal(tmp_path, variant(old, new)).startswith(expected)


def test_sql_types_are_read_case_and_space_insensitively(tmp_path):
    dataset = load(write(tmp_path, variant('sql = "real"', 'sql = "Double  Precision"')))
    assert dataset.features[0].sql == "double precision"


def test_empty_classes_are_refused(tmp_path):
    text = variant('classes = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]', "classes = []")
    assert refusal(tmp_path, text) == "label.classes: empty: a label needs at least one class"


@pytest.mark.parametrize(
    "classes, expected",
    [
        ('["a", "a"]', "label.classes: a class is listed twice"),
        ('["a,b", "c"]', "label.classes: a class may not contain a comma"),
        ('["a", 1]', "label.classes: must be a list of non-empty strings"),
    ],
)
def test_classes_must_be_distinct_texts(tmp_path, classes, expected):
    text = variant('classes = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]', f"classes = {classes}")
    assert refusal(tmp_path, text) == expected


@pytest.mark.parametrize(
    "old, new, field",
    [
        ('column = "sepal_width"', 'column = "sepal_length"', "sepal_length"),
        ('column = "sepal_width"', 'column = "id"', "id"),
        ('column = "sepal_width"', 'column = "iris_class"', "iris_class"),
    ],
)
def test_duplicate_columns_are_refused(tmp_path, old, new, field):
    expected = f"columns: duplicate column '{field}' (key, label and features must differ)"
    assert refusal(tmp_path, variant(old, new)) == expected


@pytest.mark.parametrize(
    "old, new, field, value",
    [
        ('name = "iris"', 'name = "Iris"', "name", "Iris"),
        ('name = "iris"', 'name = "my-data"', "name", "my-data"),
        ('name = "iris"', 'name = "1st"', "name", "1st"),
        ('name = "iris"', f'name = "{"n" * 41}"', "name", "n" * 41),
        ('train = "iris_train"', 'train = "public.iris"', "tables.train", "public.iris"),
        ('key = "id"', 'key = "ID"', "tables.key", "ID"),
        ('column = "petal_width"', 'column = "petal width"', "features[3].column", "petal width"),
    ],
)
def test_a_bad_name_is_refused(tmp_path, old, new, field, value):
    assert refusal(tmp_path, variant(old, new)).startswith(f"{field}: {value!r} is not a lower-case SQL identifier")


def test_a_name_in_datasets_must_be_its_files(tmp_path, monkeypatch):
    monkeypatch.setattr("stack.datasets.description.DATASETS_DIR", tmp_path)
    path = write(tmp_path, IRIS, "flowers.toml")
    with pytest.raises(DatasetError) as raised:
        load("flowers")
    assert str(raised.value) == f"{path}: name: 'iris' differs from the file's name 'flowers'"


@pytest.mark.parametrize("model", ["svm", "package.module", ":f", "a b:c"])
def test_an_unknown_model_family_is_refused(tmp_path, model):
    expected = f"model: unknown model family {model!r} (cnn, mlp or package.module:function)"
    assert refusal(tmp_path, variant('model = "mlp"', f'model = "{model}"')) == expected


def test_a_builder_of_ones_own_is_a_model(tmp_path):
    assert load(write(tmp_path, variant('model = "mlp"', 'model = "my.models:build"'))).model == "my.models:build"


def test_loader_is_optional(tmp_path):
    assert load(write(tmp_path, variant('loader = "iris"\n', ""))).loader is None


def test_an_unknown_field_is_refused_so_a_typo_is_not_ignored(tmp_path):
    assert refusal(tmp_path, variant('model = "mlp"', 'model = "mlp"\nlabels = "x"')) == "labels: unknown field"
    assert refusal(tmp_path, variant('key = "id"', 'key = "id"\nvalidate = 1')) == "tables.validate: unknown field"
    assert refusal(tmp_path, variant('sql = "real"', 'sql = "real"\nscale = 2')) == "features[0].scale: unknown field"


def test_an_image_needs_a_shape_and_must_be_the_only_feature(tmp_path):
    assert refusal(tmp_path, variant('sql = "real"', 'sql = "bytea"')) == (
        "features[0].shape: a bytea feature needs shape = [height, width] (positive integers)"
    )
    two = variant('sql = "real"', 'sql = "bytea"\nshape = [2, 2]')
    assert refusal(tmp_path, two) == "features: an image (bytea) feature must be the dataset's only feature"
    numeric = variant('sql = "real"', 'sql = "real"\nshape = [2, 2]')
    assert refusal(tmp_path, numeric) == "features[0].shape: only a bytea (image) feature has a shape"


# --- SQL ---------------------------------------------------------------------------------------------------------


def squeezed(sql: str) -> str:
    return " ".join(sql.split())


def test_iris_tables_have_a_bigserial_key_the_label_and_the_features():
    sql = squeezed(load("iris").tables_sql())

    for table in ("iris_train", "iris_test"):
        assert (
            f"CREATE TABLE IF NOT EXISTS public.{table} ( id BIGSERIAL PRIMARY KEY, iris_class TEXT, "
            "sepal_length REAL, sepal_width REAL, petal_length REAL, petal_width REAL );"
        ) in sql
        assert f"ALTER TABLE public.{table} REPLICA IDENTITY FULL;" in sql
        assert (
            f"CREATE OR REPLACE TRIGGER one_lsn_per_row BEFORE INSERT ON public.{table} "
            "FOR EACH ROW EXECUTE FUNCTION public.one_lsn_per_row();"
        ) in sql
        assert f"ALTER PUBLICATION iris_publication ADD TABLE public.{table};" in sql
    assert "GRANT SELECT ON public.iris_train, public.iris_test TO debezium;" in sql
    assert "CREATE PUBLICATION iris_publication;" in sql
    assert "ALTER PUBLICATION iris_publication ADD TABLE public.debezium_heartbeat;" in sql


def test_the_trigger_function_is_the_one_postgres_01_defines():
    mnist_sql = (ROOT / "postgres" / "01-tables.sql").read_text()
    function = re.search(r"CREATE OR REPLACE FUNCTION public\.one_lsn_per_row\(\).*?\$\$;", mnist_sql, re.S).group(0)
    assert squeezed(function) in squeezed(load("iris").tables_sql())


def test_a_test_table_equal_to_train_is_made_once(tmp_path):
    dataset = load(write(tmp_path, variant('test = "iris_test"', 'test = "iris_train"')))

    assert dataset.tables == ("iris_train",)
    assert dataset.tables_sql().count("CREATE TABLE IF NOT EXISTS public.iris_train") == 1
    assert dataset.source_registration(CFG)["config"]["table.include.list"] == "public.iris_train"


def test_iris_predictions_table_has_mnists_columns_and_only_the_sinks_rights():
    sql = squeezed(load("iris").predictions_sql())

    assert (
        "CREATE TABLE IF NOT EXISTS public.iris_predictions ( source_table TEXT, id BIGINT, predicted SMALLINT, "
        "confidence REAL, model_version INTEGER, committed_at TIMESTAMPTZ, predicted_at TIMESTAMPTZ, "
        "PRIMARY KEY (source_table, id) );"
    ) in sql
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON public.iris_predictions TO predictions_sink;" in sql


def test_mnists_sql_is_the_talks_files():
    mnist = load("mnist")
    sql_dir = ROOT / "postgres"

    assert (sql_dir / "01-tables.sql").read_text() in mnist.tables_sql()
    assert (sql_dir / "02-connector-role.sql").read_text() in mnist.tables_sql()
    assert mnist.predictions_sql() == (sql_dir / "04-predictions.sql").read_text()


# --- registrations -----------------------------------------------------------------------------------------------


def test_mnists_registrations_are_what_the_stack_registers():
    mnist = load("mnist")

    assert mnist.source_registration(CFG) == {"name": "mnist-connector", "config": connect.connector_config(CFG)}
    assert mnist.sink_registration(CFG) == {"name": "mnist-predictions-sink", "config": connect.sink_config(CFG)}


def test_iris_source_is_the_talks_connector_with_its_own_names_and_row_to_csv():
    talk = json.loads((ROOT / "debezium" / "register-postgres.json").read_text())["config"]
    registration = load("iris").source_registration(CFG)
    config = registration["config"]

    assert registration["name"] == "iris-connector"
    assert (config["slot.name"], config["publication.name"]) == ("iris_slot", "iris_publication")
    assert config["table.include.list"] == "public.iris_train,public.iris_test"
    assert config["snapshot.include.collection.list"] == "public.iris_train,public.iris_test"
    assert config["transforms"] == "partition,unwrap,csv"
    assert config["custom.metric.tags"] == "dataset=iris"
    assert {key: value for key, value in config.items() if key.startswith("transforms.csv.")} == {
        "transforms.csv.type": "io.debezium.transforms.RowToCsv",
        "transforms.csv.feature.fields": "sepal_length,sepal_width,petal_length,petal_width",
        "transforms.csv.label.field": "iris_class",
        "transforms.csv.label.classes": "Iris-setosa,Iris-versicolor,Iris-virginica",
        "transforms.csv.id.field": "id",
        "transforms.csv.header.prefix": "iris",
        "transforms.csv.invalid.topic.suffix": ".invalid",
        "transforms.csv.null.value.handling": "passthrough",
    }
    assert not [key for key in config if key.startswith("transforms.mnist.")]
    # Settings fill in what they fill in for MNIST; everything else is the talk's.
    assert (config["database.hostname"], config["database.port"]) == ("127.0.0.1", "6543")
    assert config["transforms.partition.partition.topic.num"] == "3"
    assert config["transforms.partition.partition.payload.fields"] == "change.id"
    for key in ("connector.class", "topic.prefix", "heartbeat.action.query", "exactly.once.support", "snapshot.mode"):
        assert config[key] == talk[key]


def test_the_partition_field_is_the_datasets_key_and_an_image_sets_its_byte_length(tmp_path):
    text = (DATASETS_DIR / "mnist.toml").read_text().replace('"mnist"', '"digits"').replace('"id"', '"row_id"')
    config = load(write(tmp_path, text))

    source = config.source_registration(CFG)["config"]
    assert source["transforms.partition.partition.payload.fields"] == "change.row_id"
    assert source["transforms.csv.id.field"] == "row_id"
    assert source["transforms.csv.bytes.length"] == "784"
    assert source["transforms.csv.feature.fields"] == "pixels"


def test_iris_sink_writes_its_own_topic_into_its_own_table():
    talk = json.loads((ROOT / "debezium" / "register-predictions-sink.json").read_text())["config"]
    registration = load("iris").sink_registration(CFG)
    config = registration["config"]

    assert registration["name"] == "iris-predictions-sink"
    assert (config["topics"], config["collection.name.format"]) == ("iris.predictions", "iris_predictions")
    assert config["connection.url"] == "jdbc:postgresql://127.0.0.1:6543/postgres"
    assert {k: v for k, v in config.items() if k not in ("topics", "collection.name.format", "connection.url")} == {
        k: v for k, v in talk.items() if k not in ("topics", "collection.name.format", "connection.url")
    }

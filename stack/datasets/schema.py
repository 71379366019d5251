"""The SQL a dataset needs, derived from its description: its tables, their grants and publication, and its
predictions table. Every statement is idempotent, so ``python -m stack add`` and ``up`` run it every time.

MNIST's SQL is the talk's, in ``postgres/`` (01-tables.sql, 02-connector-role.sql, 04-predictions.sql); another
dataset's follows the same pattern with its own names. Identifiers are not quoted: the description allows only
lower-case SQL identifiers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stack.config import CONNECTOR_ROLE, REPO_ROOT, SINK_ROLE

if TYPE_CHECKING:
    from stack.datasets.description import Dataset

MNIST_SQL_DIR = REPO_ROOT / "postgres"
#: The table every source connector's heartbeat writes (postgres/02-connector-role.sql); in each publication.
HEARTBEAT_TABLE = "debezium_heartbeat"


def tables_sql(dataset: Dataset) -> str:
    """CREATE TABLE IF NOT EXISTS for each table (key BIGSERIAL PRIMARY KEY, the label, the features), REPLICA
    IDENTITY FULL, the one_lsn_per_row trigger, SELECT for debezium and the dataset's publication."""
    if dataset.is_mnist:
        return "\n".join((MNIST_SQL_DIR / name).read_text() for name in ("01-tables.sql", "02-connector-role.sql"))
    schema = dataset.contract.schema
    return "\n".join(
        [
            f"-- Dataset {dataset.name} ({dataset.path.name}), derived by stack.datasets; idempotent.",
            *(_create_table(dataset, f"{schema}.{table}") for table in dataset.tables),
            _replica_identity_full([f"{schema}.{table}" for table in dataset.tables]),
            _one_lsn_per_row([f"{schema}.{table}" for table in dataset.tables]),
            _connector_role(),
            f"GRANT SELECT ON {', '.join(f'{schema}.{table}' for table in dataset.tables)} TO {CONNECTOR_ROLE};",
            _publication(dataset.contract.publication, schema, [*dataset.tables, HEARTBEAT_TABLE]),
        ]
    )


def _create_table(dataset: Dataset, table: str) -> str:
    columns = [
        f"{dataset.key} BIGSERIAL PRIMARY KEY",
        f"{dataset.label} {dataset.label_sql.upper()}",
        *(f"{feature.column} {feature.sql.upper()}" for feature in dataset.features),
    ]
    body = ",\n    ".join(columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n    {body}\n);\n"


def _replica_identity_full(tables: list[str]) -> str:
    """A delete reaches the topic as the row's last version, so the WAL must carry the whole old row; altered only
    when not yet FULL (ALTER TABLE takes an exclusive lock)."""
    checks = "".join(
        f"    IF (SELECT relreplident FROM pg_class WHERE oid = '{table}'::regclass) <> 'f' THEN\n"
        f"        ALTER TABLE {table} REPLICA IDENTITY FULL;\n"
        "    END IF;\n"
        for table in tables
    )
    return f"DO $$\nBEGIN\n{checks}END\n$$;\n"


def _one_lsn_per_row(tables: list[str]) -> str:
    """The trigger of postgres/01-tables.sql: COPY then inserts one row at a time, each row with its own LSN, so
    a connector restart resumes exactly."""
    function = (
        "CREATE OR REPLACE FUNCTION public.one_lsn_per_row() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n    RETURN NEW;\nEND\n$$;\n"
    )
    triggers = "".join(
        f"CREATE OR REPLACE TRIGGER one_lsn_per_row BEFORE INSERT ON {table}\n"
        "    FOR EACH ROW EXECUTE FUNCTION public.one_lsn_per_row();\n"
        for table in tables
    )
    return function + "\n" + triggers


def _connector_role() -> str:
    """The connector's role and the heartbeat table, as postgres/02-connector-role.sql makes them (already there
    on a running stack; here so the SQL also stands alone)."""
    return (
        "DO $$\nBEGIN\n"
        f"    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{CONNECTOR_ROLE}') THEN\n"
        f"        CREATE ROLE {CONNECTOR_ROLE} WITH LOGIN REPLICATION;\n"
        "    END IF;\nEND\n$$;\n"
        f"GRANT USAGE ON SCHEMA public TO {CONNECTOR_ROLE};\n"
        f"CREATE TABLE IF NOT EXISTS public.{HEARTBEAT_TABLE} (\n"
        "    id   SMALLINT PRIMARY KEY,\n    beat TIMESTAMPTZ NOT NULL\n);\n"
        f"GRANT SELECT, INSERT, UPDATE ON public.{HEARTBEAT_TABLE} TO {CONNECTOR_ROLE};"
    )


def _publication(publication: str, schema: str, tables: list[str]) -> str:
    """The publication, created by the owner (the connector runs with publication.autocreate.mode=disabled), with
    each table added when it is not in it yet."""
    adds = "".join(
        f"    IF NOT EXISTS (SELECT FROM pg_publication_tables WHERE pubname = '{publication}'\n"
        f"                   AND schemaname = '{schema}' AND tablename = '{table}') THEN\n"
        f"        ALTER PUBLICATION {publication} ADD TABLE {schema}.{table};\n"
        "    END IF;\n"
        for table in tables
    )
    return (
        "DO $$\nBEGIN\n"
        f"    IF NOT EXISTS (SELECT FROM pg_publication WHERE pubname = '{publication}') THEN\n"
        f"        CREATE PUBLICATION {publication};\n"
        "    END IF;\n"
        f"{adds}END\n$$;\n"
    )


def predictions_sql(dataset: Dataset) -> str:
    """The predictions table (the columns of mnist_predictions; ``predicted`` is the class index) and the sink
    role's SELECT, INSERT, UPDATE and DELETE on it, nothing else."""
    if dataset.is_mnist:
        return (MNIST_SQL_DIR / "04-predictions.sql").read_text()
    table = f"{dataset.contract.schema}.{dataset.contract.predictions_table}"
    return (
        f"-- Predictions of dataset {dataset.name}, written by its JDBC sink; idempotent.\n"
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        "    source_table  TEXT,\n"
        "    id            BIGINT,\n"
        "    predicted     SMALLINT,\n"
        "    confidence    REAL,\n"
        "    model_version INTEGER,\n"
        "    committed_at  TIMESTAMPTZ,\n"
        "    predicted_at  TIMESTAMPTZ,\n"
        "    PRIMARY KEY (source_table, id)\n"
        ");\n"
        "DO $$\nBEGIN\n"
        f"    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SINK_ROLE}') THEN\n"
        f"        CREATE ROLE {SINK_ROLE} WITH LOGIN NOREPLICATION;\n"
        "    END IF;\nEND\n$$;\n"
        f"GRANT USAGE ON SCHEMA public TO {SINK_ROLE};\n"
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {SINK_ROLE};\n"
    )

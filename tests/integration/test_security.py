"""What the connector's credentials can reach: the README's "Least privilege" paragraph, checked."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg2
import pytest

from probes.database import connect as pg_connect
from probes.database import drop_slot, query_one
from probes.deadline import poll
from probes.rows import execute
from stack import connect
from stack.contract import MNIST
from stack.processes import StepError


def debezium_login(pipeline, dbname: str | None = None):
    database = {"dbname": dbname} if dbname else {}
    login = {"user": "debezium", "password": pipeline.env["DEBEZIUM_PGPASSWORD"], **database}
    return pg_connect(pipeline.postgres, **login, connect_timeout=5)


def test_debezium_can_decode_every_table_of_its_database_but_select_only_mnist(pipeline):
    # The REPLICATION attribute lets a role create a logical slot with any output plugin in every database it can
    # log in to; test_decoding shows row values of tables it has no SELECT on. The README states exactly this.
    table = f"secret_{uuid.uuid4().hex[:8]}"
    slot = f"test_{table}"
    execute(pipeline.postgres, f"CREATE TABLE public.{table} (note text)")
    conn = debezium_login(pipeline)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding', true)", (slot,))
            execute(pipeline.postgres, f"INSERT INTO public.{table} VALUES ('the-owner-only')")
            cur.execute("SELECT string_agg(data, ' ') FROM pg_logical_slot_get_changes(%s, NULL, NULL)", (slot,))
            decoded = cur.fetchone()[0]
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(f"SELECT note FROM public.{table}")
    finally:
        conn.close()
        execute(pipeline.postgres, f"DROP TABLE public.{table}")

    assert "the-owner-only" in decoded


def test_debezium_cannot_log_in_to_any_other_database(native):
    with pytest.raises(psycopg2.OperationalError) as refused:
        debezium_login(native, "template1")

    assert "no pg_hba.conf entry" in str(refused.value) or "rejects connection" in str(refused.value)


def environ_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode(errors="replace").partition("=")[::2] for e in entries if e)


def test_capture_logs_in_as_the_replication_role_with_its_password_by_reference(capture):
    stack = capture.stack
    walsender = query_one(
        stack.postgres,
        "SELECT r.usename FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid "
        "WHERE s.slot_name = %s",
        (capture.slot,),
    )

    assert walsender == ("debezium",), f"{capture.engine} streams {capture.slot} as {walsender}"
    assert capture.source_setting("database.user") == "debezium"
    assert capture.source_setting("database.password") == capture.password_reference
    assert capture.source_setting("publication.autocreate.mode") == "disabled", "the owner made the publication"


def files_holding(root: Path, secret: bytes) -> list[str]:
    """The files under ``root`` whose bytes contain ``secret`` (symbolic links not followed)."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        try:
            if secret in path.read_bytes():
                found.append(str(path.relative_to(root)))
        except FileNotFoundError:  # removed while we looked (a Kafka segment, a PostgreSQL temporary file)
            continue
    return found


def test_capture_gets_the_connector_password_only_in_its_environment(native_capture):
    stack = native_capture.stack
    secret = stack.env["DEBEZIUM_PGPASSWORD"]
    env = environ_of(native_capture.pid())

    assert env["DEBEZIUM_PGPASSWORD"] == secret
    assert "PGPASSWORD" not in env, "the owner's password stays out of the JVM"
    assert not {"PGUSER", "PGHOST", "STACK_HOME"} & env.keys()
    # Configuration, logs, Kafka's and PostgreSQL's data, the assembled jars: the password is in none of them.
    assert files_holding(stack.config.home, secret.encode()) == []


def test_a_connector_cannot_read_other_environment_variables(pipeline):
    # A local process registers a connector that logs in as the owner with ${env:PGPASSWORD}. The allowlist leaves
    # the reference unresolved, so the login fails; were it resolved, the task would run with the owner's rights.
    cfg = pipeline.config
    name, slot = "test-env-probe", "test_env_probe"
    config = connect.connector_config(cfg)
    config.update(
        {
            "topic.prefix": "envprobe",
            "slot.name": slot,
            "database.user": pipeline.env["PGUSER"],
            "database.password": "${env:PGPASSWORD}",
            "snapshot.mode": "no_data",
        }
    )
    last: dict = {}
    try:
        try:
            connect.register(cfg, name, config)
        except StepError as refused:  # Connect's validation logs in first and refuses the connector
            last["status"] = str(refused)
        else:

            def settled() -> bool:
                last["status"] = connect.connector_status(cfg, name)
                return connect.is_running(last["status"]) or connect.failure(last["status"]) is not None

            assert poll(settled, 90, 0.5), last
            assert not connect.is_running(last["status"]), "the owner's password was resolved from Connect's env"
        assert f'password authentication failed for user "{pipeline.env["PGUSER"]}"' in str(last["status"]), last
    finally:
        connect.rest(cfg, "DELETE", f"/connectors/{name}")
        drop_slot(pipeline.postgres, slot)


def test_only_the_sink_may_delete_and_only_predictions(pipeline):
    # A delete reaches the predictions table as a tombstone the JDBC sink turns into DELETE: the one delete right.
    (grants,) = query_one(
        pipeline.postgres,
        "SELECT coalesce(array_agg(grantee || ' ' || table_schema || '.' || table_name ORDER BY grantee), '{}') "
        "FROM information_schema.role_table_grants WHERE privilege_type = 'DELETE' AND grantee <> %s",
        (pipeline.env["PGUSER"],),
    )

    # Datasets other tests added have predictions tables of their own, each with the same one grant.
    assert f"predictions_sink public.{MNIST.predictions_table}" in grants, grants
    assert all(re.fullmatch(r"predictions_sink public\.\w+_predictions", grant) for grant in grants), grants

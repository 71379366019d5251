"""The container stack and the native stack use the same connector JSON, SQL and versions."""

import re
from pathlib import Path

from stack.connect import CONNECTOR_JSON
from stack.postgres import SQL_DIR
from stack.versions import pinned_versions

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = (ROOT / "docker-compose.yml").read_text()


def test_compose_images_take_their_versions_from_the_env_file():
    assert "image: postgres:${POSTGRES_VERSION}" in COMPOSE
    assert "image: apache/kafka:${KAFKA_VERSION}" in COMPOSE
    assert "DEBEZIUM_VERSION: ${DEBEZIUM_VERSION}" in COMPOSE
    assert "KAFKA_VERSION: ${KAFKA_VERSION}" in COMPOSE


def test_dockerfile_defaults_equal_the_env_file():
    dockerfile = (ROOT / "debezium" / "Dockerfile").read_text()
    versions = pinned_versions()
    assert f"ARG DEBEZIUM_VERSION={versions['DEBEZIUM_VERSION']}" in dockerfile
    assert f"ARG KAFKA_VERSION={versions['KAFKA_VERSION']}" in dockerfile
    assert "FROM quay.io/debezium/connect:${DEBEZIUM_VERSION}" in dockerfile


def test_compose_mounts_the_native_stacks_sql_and_connector_json():
    assert "./postgres:/docker-entrypoint-initdb.d:ro" in COMPOSE
    assert SQL_DIR == ROOT / "postgres"
    assert "./debezium/register-postgres.json:/register-postgres.json:ro" in COMPOSE
    assert CONNECTOR_JSON == ROOT / "debezium" / "register-postgres.json"


def test_compose_publishes_the_native_defaults_on_loopback_only():
    ports = re.findall(r'- "([^"]+)"', COMPOSE)
    assert sorted(ports) == ["127.0.0.1:5432:5432", "127.0.0.1:8083:8083", "127.0.0.1:9092:9092"]


def test_compose_worker_matches_the_native_worker_tuning():
    native = (ROOT / "stack" / "connect.py").read_text()
    for key, value in [
        ("offset.flush.interval.ms", "1000"),
        ("producer.linger.ms", "2"),
        ("producer.batch.size", "1048576"),
        ("producer.acks", "all"),
    ]:
        assert f'"{key}={value}"' in native
        assert f"CONNECT_{key.upper().replace('.', '_')}: {value}" in COMPOSE

"""The pinned versions, read from the repository's ``.env`` (also read by docker compose)."""

from __future__ import annotations

from pathlib import Path

from stack.config import REPO_ROOT


def read_env_file(path: Path = REPO_ROOT / ".env") -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines, ignoring blanks and ``#`` comments.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / ".env"
    >>> _ = p.write_text("# versions\\nKAFKA_VERSION=4.3.1\\n\\n")
    >>> read_env_file(p)
    {'KAFKA_VERSION': '4.3.1'}
    """
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def pinned_versions() -> dict[str, str]:
    """``KAFKA_VERSION``, ``DEBEZIUM_VERSION``, ``DEBEZIUM_JDBC_VERSION`` and ``POSTGRES_VERSION`` from ``.env``."""
    values = read_env_file()
    return {k: values[k] for k in ("KAFKA_VERSION", "DEBEZIUM_VERSION", "DEBEZIUM_JDBC_VERSION", "POSTGRES_VERSION")}


def spark_version() -> str:
    """``SPARK_VERSION`` from ``.env``: the Kafka connector's version, equal to the ``spark`` extra's pyspark."""
    return read_env_file()["SPARK_VERSION"]

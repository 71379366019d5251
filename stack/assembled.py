"""Where the assembled JVM side lives under ``$STACK_HOME``: written by ``assemble``, read by the services.

A module of its own so that Kafka and Connect find their jars without importing the build (Maven, archives,
stamps) that puts them there.
"""

from __future__ import annotations

from pathlib import Path

from stack.config import StackConfig


def lib_dir(cfg: StackConfig) -> Path:
    """The Kafka and Connect classpath (every jar of stack/pom.xml's runtime scope)."""
    return cfg.home / "lib"


def plugin_dir(cfg: StackConfig) -> Path:
    """Connect's ``plugin.path``: the Debezium PostgreSQL connector and our MnistToCsv transform."""
    return cfg.home / "plugins"


def server_dist_dir(cfg: StackConfig) -> Path:
    """Debezium Server's unpacked distribution (STACK_ENGINE=server only), with our transform in its lib/."""
    return cfg.home / "debezium-server-dist"


def spark_jars_dir(cfg: StackConfig) -> Path:
    """The Spark Kafka connector and its runtime dependencies PySpark lacks (``assemble --part spark`` only)."""
    return cfg.home / "spark-jars"


def flink_jars_dir(cfg: StackConfig) -> Path:
    """Flink's Kafka SQL connector (``assemble --part flink`` only): PyFlink's own jars lack every connector."""
    return cfg.home / "flink-jars"

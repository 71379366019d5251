"""Assemble the JVM side once into ``$STACK_HOME``: Kafka + Connect classpath, Debezium plugin, our transform.

Everything comes from Maven Central through ``mvn`` (stack/pom.xml); a stamp file records what was assembled,
so a later ``up`` reuses it and a version change (``.env``) or a changed transform source re-assembles.

Two parts, stamped apart: ``lib/`` (the Kafka and Connect classpath: Kafka's version and stack/pom.xml) and
``plugins/`` (Debezium's PostgreSQL source and JDBC sink, and our transform: their versions and
debezium/mnist-smt's sources). A part is built in a
new directory beside the live one and swapped in by rename, so no jar is deleted under a running JVM; the caller
stops the JVMs that use a part before swapping it (Kafka uses lib/, Connect lib/ and plugins/).

``spark`` (opt-in, ``python -m stack.assemble --part spark``) is the Spark Kafka connector for
``consumer.spark_predict``: no service of the stack loads it, so it is assembled apart from ``up``; ``flink``
(``--part flink``) likewise, Flink's Kafka SQL connector for ``consumer.flink_predict``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from stack.archive import UnsafeArchive, extract_tar
from stack.assembled import flink_jars_dir, lib_dir, plugin_dir, server_dist_dir, spark_jars_dir
from stack.config import REPO_ROOT, ConfigError, StackConfig
from stack.processes import StepError
from stack.versions import pinned_versions, spark_version

STACK_POM = REPO_ROOT / "stack" / "pom.xml"
SMT_DIR = REPO_ROOT / "debezium" / "mnist-smt"


#: The parts, in build order, and where each one lives once swapped in. ``server`` (Debezium Server's
#: distribution, ~700 MB) is assembled only for STACK_ENGINE=server or ``assemble --engine server``; ``spark``
#: (the Kafka connector of Spark, ~7 MB) only by ``python -m stack.assemble --part spark``: no service uses it.
LIVE = {
    "lib": lib_dir,
    "plugins": plugin_dir,
    "server": server_dist_dir,
    "spark": spark_jars_dir,
    "flink": flink_jars_dir,
}
PARTS = tuple(LIVE)
OPT_IN = {"server", "spark", "flink"}


def wanted_parts(cfg: StackConfig) -> set[str]:
    """The parts this configuration runs on: ``lib`` and ``plugins``, and ``server`` with STACK_ENGINE=server."""
    return {part for part in PARTS if part not in OPT_IN or part == cfg.engine}


def _stamp_file(cfg: StackConfig) -> Path:
    return cfg.home / "assembled.json"


def _stored_stamp(cfg: StackConfig) -> dict[str, str]:
    """What was assembled last (empty when nothing was, or the stamp is unreadable: everything is stale)."""
    try:
        return json.loads(_stamp_file(cfg).read_text())
    except (OSError, ValueError):
        return {}


def _digest(paths: list[Path], *values: str) -> str:
    digest = hashlib.sha256("\0".join(values).encode())
    for path in sorted(paths):
        if path.is_file():
            digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _stamp(versions: dict[str, str]) -> dict[str, str]:
    kafka, debezium, jdbc = versions["KAFKA_VERSION"], versions["DEBEZIUM_VERSION"], versions["DEBEZIUM_JDBC_VERSION"]
    smt_sources = [STACK_POM, SMT_DIR / "pom.xml", *SMT_DIR.glob("src/main/**/*")]
    return {
        **versions,
        "lib": _digest([STACK_POM], kafka),
        "plugins": _digest(smt_sources, kafka, debezium, jdbc),
        "server": _digest([], "debezium-server-dist", debezium, *SERVER_MEMBERS),
        "spark": _digest([], *SPARK_ARTIFACTS, spark_version()),
        "flink": _digest([], FLINK_CONNECTOR),
    }


def stale_parts(cfg: StackConfig) -> set[str]:
    """The parts (``lib``, ``plugins``) whose versions or sources changed since they were assembled."""
    wanted, stored = _stamp(pinned_versions()), _stored_stamp(cfg)
    return {part for part in wanted_parts(cfg) if stored.get(part) != wanted[part] or not LIVE[part](cfg).is_dir()}


def _mvn(args: list[str], step: str, log: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StepError(f"assemble: {step}: mvn not found; install Maven (apt-get install maven)")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        out.write(f"\n$ mvn {' '.join(args)}\n")
        out.flush()
        result = subprocess.run([mvn, "-B", *args], stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise StepError(f"assemble: {step} failed; see {log}")


def _staging(cfg: StackConfig, part: str) -> Path:
    return cfg.home / f"{part}.new"


def _build_lib(versions: dict[str, str], target: Path, log: Path) -> None:
    _mvn(
        [
            "-q",
            "-f",
            str(STACK_POM),
            f"-Dkafka.version={versions['KAFKA_VERSION']}",
            f"-Ddebezium.version={versions['DEBEZIUM_VERSION']}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={target}",
        ],
        "Kafka and Connect classpath",
        log,
    )


#: Debezium's plugin archives in plugins/, each untarred into a directory of its own: (artifact, version key, step).
#: The JDBC sink's directory carries its own PostgreSQL JDBC driver.
PLUGIN_ARCHIVES = (
    ("debezium-connector-postgres", "DEBEZIUM_VERSION", "Debezium plugin archive"),
    ("debezium-connector-jdbc", "DEBEZIUM_JDBC_VERSION", "Debezium JDBC sink plugin archive"),
)


def _build_plugins(cfg: StackConfig, versions: dict[str, str], target: Path, log: Path) -> None:
    downloads = cfg.home / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True)
    for name, version_key, step in PLUGIN_ARCHIVES:
        version = versions[version_key]
        artifact = f"io.debezium:{name}:{version}:tar.gz:plugin"
        archive = downloads / f"{name}-{version}-plugin.tar.gz"
        _mvn(
            ["-q", "-f", str(STACK_POM), "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={downloads}"],
            step,
            log,
        )
        try:
            extract_tar(archive, target)
        except UnsafeArchive as error:
            raise StepError(f"assemble: refusing {archive.name}: {error}") from None

    smt_build = cfg.home / "build" / "mnist-smt"
    _mvn(
        [
            "-q",
            "-f",
            str(SMT_DIR / "pom.xml"),
            f"-Dkafka.version={versions['KAFKA_VERSION']}",
            f"-Dsmt.build.dir={smt_build}",
            "-DskipTests",
            "package",
        ],
        "MnistToCsv transform",
        log,
    )
    smt_plugin = target / "mnist-smt"
    smt_plugin.mkdir()
    shutil.copy2(smt_build / "mnist-smt.jar", smt_plugin / "mnist-smt.jar")


#: What Debezium Server runs on, of its distribution: the runner jar and lib/ (its Cassandra connectors,
#: lib_opt/ and the metrics agents, ~350 MB, stay packed).
SERVER_MEMBERS = ("debezium-server/debezium-server-dist-", "debezium-server/lib/", "debezium-server/config/")


def _build_server(cfg: StackConfig, versions: dict[str, str], target: Path, log: Path) -> None:
    """Debezium Server's distribution from Maven Central, unpacked, with our transform in its lib/."""
    version = versions["DEBEZIUM_VERSION"]
    artifact = f"io.debezium:debezium-server-dist:{version}:tar.gz"
    # Its parent POM is not published with it, so dependency:copy (which reads the descriptor) fails; get
    # without transitive resolution fetches the archive alone into the local repository.
    _mvn(["-q", "dependency:get", f"-Dartifact={artifact}", "-Dtransitive=false"], "Debezium Server", log)
    archive = _local_repository() / "io/debezium/debezium-server-dist" / version
    archive = archive / f"debezium-server-dist-{version}.tar.gz"
    if not archive.is_file():
        raise StepError(f"assemble: Debezium Server: {archive} missing after mvn dependency:get; see {log}")
    target.mkdir(parents=True)
    try:
        extract_tar(archive, target, keep=lambda name: name.startswith(SERVER_MEMBERS))
    except UnsafeArchive as error:
        raise StepError(f"assemble: refusing {archive.name}: {error}") from None
    smt = plugin_dir(cfg) / "mnist-smt" / "mnist-smt.jar"
    staged = _staging(cfg, "plugins") / "mnist-smt" / "mnist-smt.jar"
    shutil.copy2(staged if staged.is_file() else smt, target / "debezium-server" / "lib" / "mnist-smt.jar")


#: The Spark Kafka connector (source and sink) and what it needs at run time that PySpark's jars/ lacks; the
#: rest of its tree (Hadoop's client, Scala, lz4, snappy, slf4j) PySpark carries, in versions of its own.
SPARK_CONNECTOR = "spark-sql-kafka-0-10_2.13"
SPARK_ARTIFACTS = (SPARK_CONNECTOR, "spark-token-provider-kafka-0-10_2.13", "kafka-clients", "commons-pool2")

_SPARK_POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by stack/assemble.py (the spark part): the connector's runtime tree, of which four jars are kept. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.github.mnistcdc</groupId>
  <artifactId>spark-kafka</artifactId>
  <version>1.0.0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.spark</groupId>
      <artifactId>{connector}</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


def _build_spark(cfg: StackConfig, target: Path, log: Path) -> None:
    """The four jars ``spark.jars`` takes for Spark's Kafka source and sink, versions as the connector's POM says."""
    pom = cfg.home / "build" / "spark-kafka" / "pom.xml"
    pom.parent.mkdir(parents=True, exist_ok=True)
    pom.write_text(_SPARK_POM.format(connector=SPARK_CONNECTOR, version=spark_version()))
    _mvn(
        [
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DincludeArtifactIds={','.join(SPARK_ARTIFACTS)}",
            f"-DoutputDirectory={target}",
        ],
        "Spark Kafka connector",
        log,
    )
    missing = [name for name in SPARK_ARTIFACTS if not any(target.glob(f"{name}-*.jar"))]
    if missing:
        raise StepError(f"assemble: Spark Kafka connector: {', '.join(missing)} missing after mvn; see {log}")


def spark_jars(cfg: StackConfig) -> list[Path] | None:
    """The assembled Spark connector jars (for ``spark.jars``), or None when the spark part is missing or stale."""
    directory = _fresh_part(cfg, "spark")
    if directory is None:
        return None
    jars = sorted(directory.glob("*.jar"))
    return jars if all(any(j.name.startswith(f"{name}-") for j in jars) for name in SPARK_ARTIFACTS) else None


def assemble_spark(cfg: StackConfig) -> bool:
    """Build and swap in the spark part when missing or stale; True when it was built. Safe with the stack up."""
    return assemble(cfg, set() if spark_jars(cfg) is not None else {"spark"})


#: Flink's Kafka connector for SQL and the DataStream API, one shaded jar with its Kafka client. No build for
#: Flink 2.3 is on Maven Central; the 2.2 build runs on PyFlink 2.3 (the connector's API is Flink's stable one).
FLINK_CONNECTOR = "org.apache.flink:flink-sql-connector-kafka:5.0.0-2.2"


def _build_flink(target: Path, log: Path) -> None:
    """The connector's one jar (``dependency:copy``: a shaded jar needs nothing else on the classpath)."""
    _mvn(
        ["-q", "dependency:copy", f"-Dartifact={FLINK_CONNECTOR}", f"-DoutputDirectory={target}"],
        "Flink Kafka connector",
        log,
    )
    if not any(target.glob("flink-sql-connector-kafka-*.jar")):
        raise StepError(f"assemble: Flink Kafka connector missing after mvn; see {log}")


def flink_jars(cfg: StackConfig) -> list[Path] | None:
    """The assembled Flink connector jar (for ``pipeline.jars``), or None when the flink part is missing or stale."""
    directory = _fresh_part(cfg, "flink")
    jars = sorted(directory.glob("flink-sql-connector-kafka-*.jar")) if directory else []
    return jars or None


def assemble_flink(cfg: StackConfig) -> bool:
    """Build and swap in the flink part when missing or stale; True when it was built. Safe with the stack up."""
    return assemble(cfg, set() if flink_jars(cfg) is not None else {"flink"})


def _fresh_part(cfg: StackConfig, part: str) -> Path | None:
    """An opt-in part's live directory when it was assembled from today's pinned versions, else None."""
    directory = LIVE[part](cfg)
    if _stored_stamp(cfg).get(part) != _stamp(pinned_versions())[part] or not directory.is_dir():
        return None
    return directory


def _local_repository() -> Path:
    """Maven's local repository: ``-Dmaven.repo.local`` in MAVEN_OPTS, else ~/.m2/repository (our default)."""
    found = re.search(r"-Dmaven\.repo\.local=(\S+)", os.environ.get("MAVEN_OPTS", ""))
    return Path(found.group(1)) if found else Path.home() / ".m2" / "repository"


def build(cfg: StackConfig, parts: set[str]) -> None:
    """Build ``parts`` into ``<part>.new`` beside the live directories, which are not touched."""
    versions = pinned_versions()
    log = cfg.logs / "assemble.log"
    for part in PARTS:
        if part in parts:
            staging = _staging(cfg, part)
            shutil.rmtree(staging, ignore_errors=True)  # a build interrupted earlier
            _build_part(cfg, part, versions, staging, log)


def _build_part(cfg: StackConfig, part: str, versions: dict[str, str], target: Path, log: Path) -> None:
    """Build one of ``PARTS`` into ``target``."""
    match part:
        case "lib":
            _build_lib(versions, target, log)
        case "plugins":
            _build_plugins(cfg, versions, target, log)
        case "server":
            _build_server(cfg, versions, target, log)
        case "spark":
            _build_spark(cfg, target, log)
        case "flink":
            _build_flink(target, log)


def swap(cfg: StackConfig, parts: set[str]) -> None:
    """Put the built ``parts`` in place (rename: each directory is whole at every moment) and stamp them.

    Call only when no JVM uses these parts: the old jars are deleted.
    """
    wanted, stamp = _stamp(pinned_versions()), _stored_stamp(cfg)
    for part in PARTS:
        if part not in parts:
            continue
        live, old = LIVE[part](cfg), cfg.home / f"{part}.old"
        shutil.rmtree(old, ignore_errors=True)
        if live.exists():
            live.rename(old)
        _staging(cfg, part).rename(live)
        shutil.rmtree(old, ignore_errors=True)
        stamp[part] = wanted[part]
    stamp.update({k: v for k, v in wanted.items() if k not in PARTS})
    stamp.pop("sources", None)  # a one-part stamp's key: it names no part, the per-part keys replace it
    _stamp_file(cfg).write_text(json.dumps(stamp, indent=2) + "\n")


def assemble(cfg: StackConfig, parts: set[str]) -> bool:
    """Build and swap in ``parts`` (those ``stale_parts`` names); True when there was any.

    The caller makes sure no JVM runs on them (``python -m stack up`` stops and restarts them).
    """
    if not parts:
        return False
    build(cfg, parts)
    swap(cfg, parts)
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m stack.assemble --part spark|flink``: assemble an opt-in part no service of the stack loads."""
    parser = argparse.ArgumentParser(
        prog="python -m stack.assemble",
        description="Assemble an opt-in part into $STACK_HOME from Maven Central (the stack's own parts: "
        "python -m stack assemble).",
    )
    parser.add_argument(
        "--part",
        choices=["spark", "flink"],
        required=True,
        help="spark: the Kafka connector jars of consumer.spark_predict (spark-sql-kafka-0-10 and its runtime deps); "
        "flink: the Kafka connector jar of consumer.flink_predict (flink-sql-connector-kafka)",
    )
    part = parser.parse_args(argv).part
    try:
        cfg = StackConfig.from_env()
        did = {"spark": assemble_spark, "flink": assemble_flink}[part](cfg)
    except (StepError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{'assembled' if did else 'already assembled'}: {LIVE[part](cfg)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Assemble the JVM side once into ``$STACK_HOME``: Kafka + Connect classpath, Debezium plugin, our transform.

Everything comes from Maven Central through ``mvn`` (stack/pom.xml); a stamp file records what was assembled,
so a later ``up`` reuses it and a version change (``.env``) or a changed transform source re-assembles.

Two parts, stamped apart: ``lib/`` (the Kafka and Connect classpath: Kafka's version and stack/pom.xml) and
``plugins/`` (Debezium's PostgreSQL source and JDBC sink, and our transform: their versions and
debezium/mnist-smt's sources). A part is built in a
new directory beside the live one and swapped in by rename, so no jar is deleted under a running JVM; the caller
stops the JVMs that use a part before swapping it (Kafka uses lib/, Connect lib/ and plugins/).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from stack.archive import UnsafeArchive, extract_tar
from stack.assembled import lib_dir, plugin_dir, server_dist_dir
from stack.config import REPO_ROOT, StackConfig
from stack.processes import StepError
from stack.versions import pinned_versions

STACK_POM = REPO_ROOT / "stack" / "pom.xml"
SMT_DIR = REPO_ROOT / "debezium" / "mnist-smt"


#: The parts, in build order, and where each one lives once swapped in. ``server`` (Debezium Server's
#: distribution, ~700 MB) is assembled only for STACK_ENGINE=server or ``assemble --engine server``.
LIVE = {"lib": lib_dir, "plugins": plugin_dir, "server": server_dist_dir}
PARTS = tuple(LIVE)
OPT_IN = {"server"}


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


def _build_lib(cfg: StackConfig, versions: dict[str, str], target: Path, log: Path) -> None:
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


def _local_repository() -> Path:
    """Maven's local repository: ``-Dmaven.repo.local`` in MAVEN_OPTS, else ~/.m2/repository (our default)."""
    found = re.search(r"-Dmaven\.repo\.local=(\S+)", os.environ.get("MAVEN_OPTS", ""))
    return Path(found.group(1)) if found else Path.home() / ".m2" / "repository"


def build(cfg: StackConfig, parts: set[str]) -> None:
    """Build ``parts`` into ``<part>.new`` beside the live directories, which are not touched."""
    versions = pinned_versions()
    log = cfg.logs / "assemble.log"
    builders = {"lib": _build_lib, "plugins": _build_plugins, "server": _build_server}
    for part in PARTS:
        if part in parts:
            staging = _staging(cfg, part)
            shutil.rmtree(staging, ignore_errors=True)  # a build interrupted earlier
            builders[part](cfg, versions, staging, log)


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
    stamp.pop("sources", None)  # the one-part stamp of earlier versions
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

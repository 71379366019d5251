"""Assemble the JVM side once into ``$STACK_HOME``: Kafka + Connect classpath, Debezium plugin, our transform.

Everything comes from Maven Central through ``mvn`` (stack/pom.xml); a stamp file records what was assembled,
so a later ``up`` reuses it and a version change (``.env``) or a changed transform source re-assembles.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from stack.archive import UnsafeArchive, extract_tar
from stack.config import REPO_ROOT, StackConfig
from stack.processes import StepError
from stack.versions import pinned_versions

STACK_POM = REPO_ROOT / "stack" / "pom.xml"
SMT_DIR = REPO_ROOT / "debezium" / "mnist-smt"


def lib_dir(cfg: StackConfig) -> Path:
    return cfg.home / "lib"


def plugin_dir(cfg: StackConfig) -> Path:
    return cfg.home / "plugins"


def _stamp(versions: dict[str, str]) -> dict[str, str]:
    digest = hashlib.sha256()
    for path in sorted([SMT_DIR / "pom.xml", STACK_POM, *SMT_DIR.glob("src/main/**/*")]):
        if path.is_file():
            digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return {**versions, "sources": digest.hexdigest()}


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


def is_assembled(cfg: StackConfig) -> bool:
    stamp_file = cfg.home / "assembled.json"
    try:
        return json.loads(stamp_file.read_text()) == _stamp(pinned_versions())
    except (OSError, ValueError):
        return False


def assemble(cfg: StackConfig, force: bool = False) -> bool:
    """Fetch and lay out the jars unless the stamp says they are current; True when work was done."""
    if not force and is_assembled(cfg):
        return False
    versions = pinned_versions()
    log = cfg.logs / "assemble.log"
    lib, plugins, downloads = lib_dir(cfg), plugin_dir(cfg), cfg.home / "downloads"
    for path in (lib, plugins):
        shutil.rmtree(path, ignore_errors=True)
    downloads.mkdir(parents=True, exist_ok=True)
    props = [f"-Dkafka.version={versions['KAFKA_VERSION']}", f"-Ddebezium.version={versions['DEBEZIUM_VERSION']}"]

    _mvn(
        [
            "-q",
            "-f",
            str(STACK_POM),
            *props,
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ],
        "Kafka and Connect classpath",
        log,
    )
    artifact = f"io.debezium:debezium-connector-postgres:{versions['DEBEZIUM_VERSION']}:tar.gz:plugin"
    _mvn(
        ["-q", "-f", str(STACK_POM), "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={downloads}"],
        "Debezium plugin archive",
        log,
    )
    archive = downloads / f"debezium-connector-postgres-{versions['DEBEZIUM_VERSION']}-plugin.tar.gz"
    plugins.mkdir(parents=True)
    try:
        extract_tar(archive, plugins)
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
    smt_plugin = plugins / "mnist-smt"
    smt_plugin.mkdir()
    shutil.copy2(smt_build / "mnist-smt.jar", smt_plugin / "mnist-smt.jar")

    (cfg.home / "assembled.json").write_text(json.dumps(_stamp(versions), indent=2) + "\n")
    return True

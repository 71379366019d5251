"""What a user sees for bad input and stopped services: one line on stderr, exit 1 or 2, no traceback.

No services run here: "a stopped stack" is a set of ports nothing listens on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.integration.support.backend import free_port

ROOT = Path(__file__).resolve().parents[2]


def closed_env(**extra: str) -> dict[str, str]:
    """Settings of a stack that is not running: every port is free (nothing listens)."""
    return {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(free_port()),
        "PGPASSWORD": "postgres",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "CONNECT_URL": f"http://127.0.0.1:{free_port()}",
        "STACK_HOME": str(Path(os.environ.get("TMPDIR", "/tmp")) / f"no-stack-{os.getpid()}"),
        **extra,
    }


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", *args]
    return subprocess.run(argv, cwd=ROOT, env=env or closed_env(), capture_output=True, text=True, timeout=timeout)


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["consumer.train", "--idle-timeout", "nan"],
        ["consumer.evaluate", "--idle-timeout", "nan"],
        ["loader", "--rate", "nan"],
        ["loader", "--rate", "inf"],
    ],
)
def test_nan_and_inf_are_usage_errors(command):
    result = run(*command)

    assert result.returncode == 2, result.stderr
    assert command[-2] in result.stderr.strip().splitlines()[-1]


def test_loader_help_works_with_an_invalid_pgport():
    result = run("loader", "--help", env=closed_env(PGPORT="abc"))

    assert result.returncode == 0, result.stderr
    assert "PGPORT" in result.stdout


def test_loader_reports_an_invalid_pgport_in_one_line():
    result = run("loader", "--no-progress", env=closed_env(PGPORT="abc"))

    assert result.returncode == 2
    assert "PGPORT" in one_line(result) and "abc" in one_line(result)


def test_train_refuses_a_model_path_without_keras_extension_before_reading(tmp_path):
    # The broker is unreachable too: the model path is checked first, so that is what the user hears about.
    result = run("consumer.train", "--model", str(tmp_path / "model.h5"))

    assert result.returncode == 2, result.stderr
    assert ".keras" in one_line(result)


def test_train_refuses_an_unwritable_model_directory_before_reading(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    result = run("consumer.train", "--model", str(blocker / "mnist.keras"))

    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert str(blocker) in line and "Kafka" not in line


@pytest.mark.parametrize("kind", ["zip without config.json", "random bytes"])
def test_evaluate_with_a_keras_file_that_is_not_a_model_says_so_in_one_line(tmp_path, kind):
    model = tmp_path / "x.keras"
    if kind == "random bytes":
        model.write_bytes(os.urandom(2048))
    else:
        with zipfile.ZipFile(model, "w") as archive:
            archive.writestr("notes.txt", "not a model")

    result = run("consumer.evaluate", "--model", str(model))

    assert result.returncode == 1, result.stderr[-2000:]
    assert str(model) in one_line(result)


@pytest.mark.parametrize("command", [["consumer.train"], ["consumer.evaluate"]])
def test_consumers_on_an_unreachable_broker_fail_in_one_line(tmp_path, command):
    model = tmp_path / "mnist.keras"
    if command == ["consumer.evaluate"]:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from consumer.learning.models import build_model

        build_model().save(model)

    result = run(*command, "--model", str(model))

    assert result.returncode == 1, result.stderr[-2000:]
    assert "cannot reach Kafka" in one_line(result)
    assert command == ["consumer.evaluate"] or not model.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["bench.loader_bench", "--limit", "20", "--reps", "1"],
        ["bench.latency_bench", "--rates", "100", "--seconds", "1", "--reps", "1"],
        ["bench.reading_bench", "--records", "20", "--reps", "1"],
        ["bench.pipeline_bench", "--limit", "20", "--reps", "1"],
        ["bench.soak", "--rows", "20", "--rate", "100", "--every", "0.5"],
    ],
)
def test_bench_scripts_on_a_stopped_stack_fail_in_one_line(command):
    result = run(*command, "--no-record", timeout=300)

    assert result.returncode == 1, result.stdout[-1000:] + result.stderr[-3000:]
    one_line(result)

"""Pid files name our own processes only, are removed on stop, and two `up`s do not run at once."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

from stack import connect, kafka
from stack.config import StackConfig
from stack.processes import pid_alive, start_process
from tests.integration.support.backend import ROOT, isolated_env


@pytest.fixture
def cfg(tmp_path) -> StackConfig:
    return StackConfig.from_env(isolated_env(tmp_path / "stack"))


@pytest.fixture
def stranger():
    """A live process that is not ours (as after a reboot reuses a recorded pid)."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n")


def test_a_pid_file_naming_an_unrelated_process_is_not_kafka(cfg, stranger):
    write_pid(kafka.pid_file(cfg), stranger.pid)

    assert kafka.running_pid(cfg) is None


def test_down_never_signals_an_unrelated_process_and_drops_the_stale_pid_file(cfg, stranger):
    write_pid(kafka.pid_file(cfg), stranger.pid)
    write_pid(connect.pid_file(cfg), stranger.pid)

    assert kafka.stop(cfg) is False
    assert connect.stop(cfg) is False

    assert stranger.poll() is None and pid_alive(stranger.pid), "the unrelated process must survive"
    assert not kafka.pid_file(cfg).exists() and not connect.pid_file(cfg).exists()


def test_stopping_our_process_removes_its_pid_file(cfg):
    # A stand-in with Kafka's command line: the java main class and our config path.
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", str(kafka.config_file(cfg))]
    ours = start_process(argv, kafka.log_file(cfg), kafka.pid_file(cfg))
    assert kafka.running_pid(cfg) == ours

    assert kafka.stop(cfg) is True

    assert not pid_alive(ours)
    assert not kafka.pid_file(cfg).exists()


def test_a_second_up_fails_at_once_while_one_holds_the_lock(tmp_path):
    env = isolated_env(tmp_path / "stack")
    lock = tmp_path / "stack" / "run" / "up.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run(
            [sys.executable, "-m", "stack", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: another `python -m stack up` or `down` is running for {tmp_path / 'stack'} "
        f"(it holds {lock}); wait for it to finish"
    ]


def test_a_running_kafka_is_not_taken_for_connect(cfg):
    # Both JVMs run on one classpath; the main class and the properties file tell them apart.
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "kafka.Kafka", str(kafka.config_file(cfg))]
    ours = start_process(argv, kafka.log_file(cfg), kafka.pid_file(cfg))
    write_pid(connect.pid_file(cfg), ours)

    assert connect.running_pid(cfg) is None
    assert connect.stop(cfg) is False and pid_alive(ours)
    assert kafka.stop(cfg) is True

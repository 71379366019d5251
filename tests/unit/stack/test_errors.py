"""Expected failures of `python -m stack` are one line (`error: ...`, exit 1), never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from stack import connect, kafka
from stack.config import StackConfig
from stack.processes import StepError
from tests.integration.support.backend import ROOT, isolated_env


@pytest.fixture
def cfg(tmp_path) -> StackConfig:
    return StackConfig.from_env(isolated_env(tmp_path / "stack"))


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    return text


def test_topic_creation_with_no_broker_is_a_step_error(cfg):
    with pytest.raises(StepError) as caught:
        kafka.ensure_topics(cfg)

    assert one_line(caught.value).startswith(
        f"kafka: creating topics failed: no broker answers at {cfg.kafka_bootstrap}"
    )


def test_registering_with_connect_gone_is_a_step_error(cfg):
    with pytest.raises(StepError) as caught:
        connect.register(cfg)

    assert one_line(caught.value).startswith(
        f"connector: registering mnist-connector failed: Kafka Connect at {cfg.connect_url} did not answer ("
    )


def test_registering_when_connect_drops_the_connection_is_a_step_error(tmp_path):
    # A listener that accepts and resets, as a Connect worker dying in the middle of the PUT does.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def reset_one() -> None:
        peer, _ = server.accept()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.recv(65536)
        peer.close()

    threading.Thread(target=reset_one, daemon=True).start()
    env = {**isolated_env(tmp_path / "stack"), "CONNECT_URL": f"http://127.0.0.1:{server.getsockname()[1]}"}
    with pytest.raises(StepError) as caught:
        connect.register(StackConfig.from_env(env))
    server.close()

    assert "did not answer" in one_line(caught.value)


def test_up_with_an_unusable_stack_home_is_one_line(tmp_path):
    # Root may write anywhere, so "not writable" is made with a path below a regular file.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = isolated_env(blocker / "stack")

    result = subprocess.run(
        [sys.executable, "-m", "stack", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: STACK_HOME={blocker / 'stack'} is not a writable directory: ")


def test_a_broker_that_does_not_answer_is_reported_quietly(cfg, capfd):
    # librdkafka would log every refused connection on stderr from its own threads, beside our one line.
    assert kafka.answers_metadata(cfg) is False
    with pytest.raises(StepError):
        kafka.ensure_topics(cfg)

    assert capfd.readouterr().err == ""

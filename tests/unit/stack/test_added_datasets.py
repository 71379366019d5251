"""``python -m stack add``: what a user sees without a running stack, and the record ``up`` reads again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stack import added_datasets, runner
from stack.config import StackConfig
from stack.datasets import DATASETS_DIR, load
from stack.processes import StepError
from tests.integration.support.backend import free_port

ROOT = Path(__file__).resolve().parents[3]


def stopped_stack(home: Path) -> dict[str, str]:
    """Settings of a stack that is not running: nothing listens on its ports."""
    return {
        "PATH": "/usr/bin:/bin",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(free_port()),
        "PGPASSWORD": "postgres",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "CONNECT_URL": f"http://127.0.0.1:{free_port()}",
        "STACK_HOME": str(home),
    }


def stack(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "stack", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_adding_to_a_stopped_stack_is_one_line_and_exit_1(tmp_path):
    result = stack("add", "iris", env=stopped_stack(tmp_path / "home"))

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: add iris: the stack is not running (postgres, kafka, connect down): python -m stack up"
    ]
    assert not (tmp_path / "home" / "datasets.json").exists()


def test_a_bad_description_is_one_line_and_exit_1_before_any_service_is_asked(tmp_path):
    description = tmp_path / "broken.toml"
    description.write_text((DATASETS_DIR / "iris.toml").read_text().replace('sql = "text"', 'sql = "json"'))

    result = stack("add", str(description), env=stopped_stack(tmp_path / "home"))

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: {description}: label.sql: unknown SQL type 'json'")


def test_add_without_a_dataset_is_a_usage_error(tmp_path):
    result = stack("add", env=stopped_stack(tmp_path / "home"))

    assert result.returncode == 2
    assert "NAME|PATH" in result.stderr


def test_a_built_in_dataset_is_recorded_by_name_and_a_users_by_path(tmp_path):
    cfg = StackConfig.from_env({"STACK_HOME": str(tmp_path)})
    own = tmp_path / "own.toml"
    own.write_text((DATASETS_DIR / "iris.toml").read_text().replace('name = "iris"', 'name = "own"'))

    added_datasets.record(cfg, load("iris"))
    added_datasets.record(cfg, load(own))
    added_datasets.record(cfg, load("iris"))  # twice is fine

    assert added_datasets.recorded(cfg) == {"iris": "iris", "own": str(own)}
    assert {name: load(where).name for name, where in added_datasets.recorded(cfg).items()} == {
        "iris": "iris",
        "own": "own",
    }
    assert added_datasets.forget(cfg, "own") and not added_datasets.forget(cfg, "own")
    assert added_datasets.recorded(cfg) == {"iris": "iris"}


def test_nothing_recorded_is_no_dataset(tmp_path):
    assert added_datasets.recorded(StackConfig.from_env({"STACK_HOME": str(tmp_path)})) == {}


def test_an_unreadable_record_says_how_to_recover(tmp_path):
    cfg = StackConfig.from_env({"STACK_HOME": str(tmp_path)})
    added_datasets.state_file(cfg).write_text("{not json")

    with pytest.raises(StepError, match=r"datasets\.json: unreadable .*; remove it and add the datasets again"):
        added_datasets.recorded(cfg)


def test_up_says_which_recorded_dataset_no_longer_loads_and_goes_on(tmp_path):
    cfg = StackConfig.from_env({"STACK_HOME": str(tmp_path)})
    gone = tmp_path / "gone.toml"
    added_datasets.state_file(cfg).write_text(f'{{"datasets": {{"gone": "{gone}"}}}}')
    said: list[str] = []

    added_datasets.set_up_recorded(cfg, said.append, wait=None, timeout=1)

    assert said == [f"dataset    gone not set up: {gone}: file: no such file (datasets: iris, mnist)"]


def test_adding_mnist_changes_nothing_since_up_sets_it_up(tmp_path):
    cfg = StackConfig.from_env({"STACK_HOME": str(tmp_path)})
    said: list[str] = []

    runner.add(cfg, load("mnist"), said.append)

    assert said == ["dataset    mnist is built in: python -m stack up sets it up, nothing to add"]
    assert added_datasets.recorded(cfg) == {}

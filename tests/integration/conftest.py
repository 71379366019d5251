"""One session-scoped pipeline for all integration tests; every test uses its own rows."""

from __future__ import annotations

import shutil

import pytest

from tests.integration.backend import Pipeline, choose_backend, native_env


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    backend = choose_backend()
    if backend == "docker":
        from tests.integration.compose_backend import compose_pipeline

        with compose_pipeline() as started:
            yield started
        return

    env, home = native_env()
    stack = Pipeline("native", env)
    result = stack.run("stack", "up", timeout=600)
    if result.returncode != 0:
        logs = home / "logs"
        tails = {p.name: p.read_text(errors="replace")[-3000:] for p in logs.glob("*.log")} if logs.exists() else {}
        stack.run("stack", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)
        pytest.fail(f"python -m stack up failed:\n{result.stdout}\n{result.stderr}\n{tails}", pytrace=False)
    try:
        yield stack
    finally:
        stack.run("stack", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)

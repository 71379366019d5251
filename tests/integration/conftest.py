"""One session-scoped pipeline for all integration tests; every test uses its own rows."""

from __future__ import annotations

import re
import shutil

import pytest

from stack.contract import MNIST
from tests.integration.support.backend import Pipeline, choose_backend, free_port, native_env
from tests.integration.support.capture import ENGINES, NO_JAVA, Capture, seed_assembled


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    backend = choose_backend()
    if backend == "docker":
        from tests.integration.support.compose_backend import compose_pipeline

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


@pytest.fixture
def native(pipeline) -> Pipeline:
    """The pipeline, for tests that stop, kill or inspect the native stack's own processes (skipped on docker)."""
    if pipeline.backend != "native":
        pytest.skip("stops, kills or inspects processes of the native stack")
    return pipeline


@pytest.fixture(scope="session")
def server_stack() -> Pipeline:
    """A second native stack, ``STACK_ENGINE=server``: Debezium Server captures, Connect runs only the sink.
    Started once a session, when the first test that needs it runs."""
    if NO_JAVA:
        pytest.skip(NO_JAVA)
    env, home = native_env()
    seed_assembled(home)
    env.update({"STACK_ENGINE": "server", "DEBEZIUM_SERVER_PORT": str(free_port())})
    stack = Pipeline("native", env)
    result = stack.run("stack", "up", timeout=900)
    if result.returncode != 0:
        log = home / "logs" / "debezium-server.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        stack.run("stack", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)
        pytest.fail(f"STACK_ENGINE=server up failed:\n{result.stdout}\n{result.stderr}\n{tail}", pytrace=False)
    assert "server     debezium-server started" in result.stdout, result.stdout
    try:
        yield stack
    finally:
        stack.run("stack", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(
    params=[
        pytest.param(engine, marks=pytest.mark.skipif(engine == "server" and bool(NO_JAVA), reason=NO_JAVA))
        for engine in ENGINES
    ]
)
def capture(request) -> Capture:
    """Each capture engine in turn: ``connect`` is the session's ``pipeline``, ``server`` the ``server_stack``."""
    stack = request.getfixturevalue("pipeline" if request.param == "connect" else "server_stack")
    return Capture(request.param, stack)


@pytest.fixture
def native_capture(capture) -> Capture:
    """``capture``, for tests that kill or inspect the capture's own processes (the connect engine is skipped on
    docker, as ``native`` is)."""
    if capture.stack.backend != "native":
        pytest.skip("stops, kills or inspects processes of the native stack")
    return capture


@pytest.fixture(scope="session")
def train_split_loaded(pipeline) -> None:
    """The bundled training split in mnist_train (so on the training topic), once a session."""
    load = pipeline.run("loader", "--split", "train", "--no-progress")
    assert load.returncode == 0, load.stderr


@pytest.fixture(scope="session")
def trained_model(pipeline, train_split_loaded, tmp_path_factory):
    model = tmp_path_factory.mktemp("model") / "mnist.keras"

    train = pipeline.run("consumer.train", "--model", str(model), "--quiet", "--idle-timeout", "5", timeout=900)

    assert train.returncode == 0, train.stdout + train.stderr
    assert re.search(rf"read \d+ records from {MNIST.train}", train.stdout)
    assert re.search(r"trained on \d+ records, 10 epochs .* validation accuracy 0\.9\d+; model saved to", train.stdout)
    assert model.is_file()
    return model


@pytest.fixture(scope="session")
def model_store(tmp_path_factory):
    """``latest.keras`` of a model store holding one version (an untrained CNN: fast, and as good as any for
    tests of the plumbing)."""
    from consumer.cli import quiet_tensorflow

    quiet_tensorflow()
    from consumer.learning.models import build_model
    from consumer.store.versions import ModelStore

    store = ModelStore(tmp_path_factory.mktemp("store"))
    assert store.publish(build_model()) == 1
    return str(store.latest_model)


@pytest.fixture(scope="session")
def spark_ready(pipeline):
    """The connector jars assembled into the test stack's STACK_HOME (from ~/.m2 after the first time)."""
    try:
        import pyarrow  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as error:
        pytest.skip(f"{error.name} is not installed (pip install -e '.[spark]')")
    if pipeline.backend != "native":
        pytest.skip("runs Spark on the host against the native stack's STACK_HOME")
    assembled = pipeline.run("stack.assemble", "--part", "spark", timeout=300)
    if assembled.returncode != 0:
        pytest.skip(f"the Spark Kafka connector jars cannot be assembled: {assembled.stderr.strip()[:200]}")

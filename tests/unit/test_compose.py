"""docker-compose.yml as `docker compose` reads it, checked without a Docker engine.

The file is loaded by compose-spec's Go loader (the library inside `docker compose`), built from
tests/compose/render, with the same .env, environment and env files; the tests assert on its JSON. The shell
that the `register` service and the healthchecks run is executed here against a small fake of Connect's REST API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stack import connect
from stack.config import StackConfig
from stack.contract import MNIST
from tests.integration.support.compose_backend import compose_variables, pipeline_env, write_env_file

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR_JSON = ROOT / "debezium" / "register-postgres.json"


# --- a fake of Connect's REST API, for the shell the containers run -------------------------------------------


class FakeConnect:
    """Answers each (method, path) from a queue of (status, body) and records every request it got."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[tuple[int, object]]] = {}
        self.requests: list[tuple[str, str, bytes]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((self.command, self.path, body))
                queue = fake.answers.get((self.command, self.path)) or [(404, {"error_code": 404})]
                status, payload = queue.pop(0) if len(queue) > 1 else queue[0]
                data = json.dumps(payload, separators=(",", ":")).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def puts(self) -> list[tuple[str, bytes]]:
        return [(path, body) for method, path, body in self.requests if method == "PUT"]


@pytest.fixture
def fake_connect() -> Iterator[FakeConnect]:
    fake = FakeConnect()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def shell_of(argv: list[str]) -> str:
    """The shell script of a rendered ``sh -c SCRIPT`` entrypoint or ``CMD-SHELL SCRIPT`` healthcheck."""
    if argv[:2] == ["sh", "-c"]:
        return argv[2]
    assert argv[0] == "CMD-SHELL", argv
    return argv[1]


#: The registration services and the connector JSON each one registers.
REGISTERED = {"register": CONNECTOR_JSON, "register-sink": connect.SINK_JSON}


def register_env(services: dict[str, dict], fake: FakeConnect, name: str = "register") -> dict[str, str]:
    """A register container's environment, pointed at the fake Connect and the repo's connector JSON."""
    service = services[name]
    env = {k: v for k, v in (service.get("environment") or {}).items() if v is not None}
    mounts = {volume["target"]: volume["source"] for volume in service.get("volumes", [])}
    path = REGISTERED[name]
    assert mounts.get(env.get("CONNECTOR_JSON")) == str(path), f"{name} reads the mounted connector JSON"
    return {"PATH": os.environ["PATH"], **env, "CONNECT_URL": fake.url, "CONNECTOR_JSON": str(path)}


def status_doc(connector: str, *tasks: str) -> dict:
    return {
        "name": MNIST.connector,
        "connector": {"state": connector, "worker_id": "connect:8083"},
        "tasks": [{"id": i, "state": state, "worker_id": "connect:8083"} for i, state in enumerate(tasks)],
        "type": "source",
    }


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


# --- item: `docker compose up --wait` must not fail on a one-shot container ----------------------------------


def test_every_service_up_wait_waits_for_has_a_healthcheck(services):
    # --wait waits for every started service to be running/healthy; one that exits fails it (docker/compose#10596).
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and check["test"][0] != "NONE" and not check.get("disable"), name


def test_register_retries_until_connect_accepts_the_config_then_stays_up(services, fake_connect):
    path = f"/connectors/{MNIST.connector}/config"
    rebalancing = (409, {"error_code": 409, "message": "Cannot complete request because of a conflicting operation"})
    fake_connect.answers[("PUT", path)] = [rebalancing, rebalancing, (500, {"error_code": 500}), (201, {})]
    script = shell_of(services["register"]["entrypoint"])
    process = subprocess.Popen(
        ["sh", "-c", script],
        env=register_env(services, fake_connect),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(lambda: len(fake_connect.puts()) >= 4, 30), fake_connect.requests
        time.sleep(1.5)
        assert process.poll() is None, "register must stay up after registering, or `up --wait` fails"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    puts = fake_connect.puts()
    assert len(puts) == 4, "one PUT per attempt, none after the 201"
    expected = json.loads(CONNECTOR_JSON.read_text())["config"]
    assert all(p == path and json.loads(body) == expected for p, body in puts)


def test_register_puts_topic_partitions_as_the_partition_routings_count(services, fake_connect):
    """As the native stack (stack.connect.with_partitions): the count must match the topics' partitions."""
    fake_connect.answers[("PUT", f"/connectors/{MNIST.connector}/config")] = [(400, {"message": "stop here"})]
    env = {**register_env(services, fake_connect), "REGISTER_ATTEMPTS": "1", "TOPIC_PARTITIONS": "4"}
    subprocess.run(["sh", "-c", shell_of(services["register"]["entrypoint"])], env=env, timeout=30)

    (put,) = fake_connect.puts()
    registered = json.loads(put[1])
    shipped = json.loads(CONNECTOR_JSON.read_text())["config"]
    assert registered == connect.with_partitions(shipped, 4) != shipped
    assert services["register"]["environment"]["TOPIC_PARTITIONS"] == "2", "the compose default, as the native one"


def test_register_gives_up_with_exit_1_when_connect_never_accepts(services, fake_connect):
    fake_connect.answers[("PUT", f"/connectors/{MNIST.connector}/config")] = [(400, {"message": "bad config"})]
    env = {**register_env(services, fake_connect), "REGISTER_ATTEMPTS": "3"}
    result = subprocess.run(["sh", "-c", shell_of(services["register"]["entrypoint"])], env=env, timeout=30)
    assert result.returncode == 1
    assert len(fake_connect.puts()) == 3


@pytest.mark.parametrize(
    "answer, healthy",
    [
        ((200, status_doc("RUNNING", "RUNNING")), True),
        ((200, status_doc("RUNNING")), False),
        ((200, status_doc("RUNNING", "FAILED")), False),
        ((200, status_doc("FAILED", "RUNNING")), False),
        ((200, status_doc("RUNNING", "RUNNING", "UNASSIGNED")), False),
        ((404, {"error_code": 404}), False),
    ],
    ids=["running", "no-task", "task-failed", "connector-failed", "task-unassigned", "unknown"],
)
def test_register_is_healthy_only_while_the_connector_and_its_tasks_run(services, fake_connect, answer, healthy):
    fake_connect.answers[("GET", f"/connectors/{MNIST.connector}/status")] = [answer]
    check = shell_of(services["register"]["healthcheck"]["test"])
    result = subprocess.run(["sh", "-c", check], env=register_env(services, fake_connect), timeout=30)
    assert (result.returncode == 0) == healthy


def test_register_names_the_connector_of_the_json(services):
    assert services["register"]["environment"]["CONNECTOR_NAME"] == json.loads(CONNECTOR_JSON.read_text())["name"]
    assert MNIST.connector == json.loads(CONNECTOR_JSON.read_text())["name"]
    assert services["register-sink"]["environment"]["CONNECTOR_NAME"] == connect.SINK_NAME


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_register_runs_in_an_image_with_sh_and_curl(services, name):
    assert services[name]["image"].startswith("curlimages/curl:")
    assert services[name]["entrypoint"][:2] == ["sh", "-c"]


def test_register_sink_puts_the_sink_json_and_is_healthy_only_while_the_sink_runs(services, fake_connect):
    path = f"/connectors/{connect.SINK_NAME}/config"
    fake_connect.answers[("PUT", path)] = [(201, {})]
    fake_connect.answers[("GET", f"/connectors/{connect.SINK_NAME}/status")] = [
        (200, status_doc("RUNNING", "FAILED")),
        (200, status_doc("RUNNING", "RUNNING")),
    ]
    env = {**register_env(services, fake_connect, "register-sink"), "REGISTER_ATTEMPTS": "1"}
    process = subprocess.Popen(["sh", "-c", shell_of(services["register-sink"]["entrypoint"])], env=env)
    try:
        assert wait_for(lambda: len(fake_connect.puts()) >= 1, 30)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    [(put_path, body)] = fake_connect.puts()
    assert put_path == path and json.loads(body) == json.loads(connect.SINK_JSON.read_text())["config"]
    check = shell_of(services["register-sink"]["healthcheck"]["test"])
    health = [subprocess.run(["sh", "-c", check], env=env, timeout=30).returncode for _ in range(2)]
    assert health == [1, 0], "a FAILED sink task is unhealthy"


def test_connect_container_resolves_the_same_passwords_as_the_native_worker(services, tmp_path):
    env = services["connect"]["environment"]
    pattern = native_worker_properties(tmp_path)["config.providers.env.param.allowlist.pattern"]
    assert env["CONNECT_CONFIG_PROVIDERS_ENV_PARAM_ALLOWLIST_PATTERN"] == pattern
    assert {"DEBEZIUM_PGPASSWORD", "PREDICTIONS_SINK_PGPASSWORD"} <= env.keys()
    assert env["PREDICTIONS_SINK_PGPASSWORD"] == services["postgres"]["environment"]["PREDICTIONS_SINK_PGPASSWORD"]


# --- item: the Connect image's entrypoint sets the flush interval from OFFSET_FLUSH_INTERVAL_MS ---------------


def native_worker_properties(tmp_path: Path) -> dict[str, str]:
    path = connect.write_config(StackConfig.from_env({"STACK_HOME": str(tmp_path)}))
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_connect_container_flushes_offsets_as_often_as_the_native_worker(services, tmp_path):
    env = services["connect"]["environment"]
    # debezium/container-images connect-base/3.6/docker-entrypoint.sh:
    #   : ${OFFSET_FLUSH_INTERVAL_MS:=60000} ... export CONNECT_OFFSET_FLUSH_INTERVAL_MS=$OFFSET_FLUSH_INTERVAL_MS
    assert env.get("OFFSET_FLUSH_INTERVAL_MS") == native_worker_properties(tmp_path)["offset.flush.interval.ms"]
    assert "CONNECT_OFFSET_FLUSH_INTERVAL_MS" not in env, "overwritten by the entrypoint: it only misleads"


def test_connect_container_has_the_native_workers_producer_and_fetch_settings(services, tmp_path):
    env = services["connect"]["environment"]
    properties = native_worker_properties(tmp_path).items()
    settings = {k: v for k, v in properties if k.startswith("producer.") or k.endswith("fetch.max.wait.ms")}
    assert {"producer.acks", "fetch.max.wait.ms", "consumer.fetch.max.wait.ms"} <= settings.keys()
    for key, value in settings.items():
        assert env.get("CONNECT_" + key.upper().replace(".", "_")) == value, key


# --- item: Connect's healthcheck uses its health endpoint ------------------------------------------------------


@pytest.mark.parametrize(
    "health, healthy",
    [((200, {"status": "healthy"}), True), ((503, {"status": "starting"}), False), ((500, {"status": "x"}), False)],
    ids=["healthy", "starting", "unhealthy"],
)
def test_connect_is_healthy_only_when_its_health_endpoint_says_so(services, fake_connect, health, healthy):
    # GET / answers 200 while the worker is still starting; GET /health (KIP-1017, Kafka 3.9+) does not.
    fake_connect.answers[("GET", "/")] = [(200, {"version": "4.3.0"})]
    fake_connect.answers[("GET", "/health")] = [health]
    check = shell_of(services["connect"]["healthcheck"]["test"]).replace("http://localhost:8083", fake_connect.url)
    result = subprocess.run(["sh", "-c", check], env={"PATH": os.environ["PATH"]}, timeout=30)
    assert (result.returncode == 0) == healthy
    assert ("GET", "/health") in {(m, p) for m, p, _ in fake_connect.requests}


# --- item: host ports follow the README's variables; Connect reaches PostgreSQL inside the network ------------


def published(service: dict, target: int) -> dict:
    [port] = [p for p in service.get("ports", []) if p["target"] == target]
    return port


def host_listener(kafka: dict) -> tuple[int, str]:
    """The container port of the broker's HOST listener and the address it advertises for it."""
    env = kafka["environment"]
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    return int(listeners["HOST"].rpartition(":")[2]), advertised["HOST"]


def assert_published_on(services: dict, pg: str, kafka: str, connect_port: str) -> None:
    for name, target, port in [("postgres", 5432, pg), ("kafka", 9092, kafka), ("connect", 8083, connect_port)]:
        entry = published(services[name], target)
        assert (entry["host_ip"], entry["published"]) == ("127.0.0.1", port), name
    container_port, advertised = host_listener(services["kafka"])
    assert published(services["kafka"], container_port)["published"] == kafka
    assert advertised == f"127.0.0.1:{kafka}", "clients are sent to the advertised address: it must be the host's"


def test_defaults_publish_the_native_stacks_ports_on_loopback(services):
    assert_published_on(services, "5432", "9092", "8083")


def test_exported_port_variables_move_the_published_ports(render):
    ports = {"PGPORT": "15432", "KAFKA_PORT": "19092", "CONNECT_PORT": "18083"}
    assert_published_on(render(env=ports)["services"], "15432", "19092", "18083")


def test_an_exported_variable_wins_over_the_env_file(render, tmp_path):
    # compose_backend relies on it: it reuses exported ports and writes free ones only for the others.
    env_file = write_env_file({"PGPORT": "15432", "KAFKA_PORT": "19092", "CONNECT_PORT": "18083"}, tmp_path)
    rendered = render(env={"PGPORT": "25432"}, env_files=[ROOT / ".env", env_file])
    assert_published_on(rendered["services"], "25432", "19092", "18083")
    assert compose_variables({"PGPORT": "25432"})["PGPORT"] == "25432"


def test_compose_backend_talks_to_the_ports_it_publishes(render, tmp_path):
    variables = compose_variables({})
    env_file = write_env_file(variables, tmp_path)
    rendered = render(env_files=[ROOT / ".env", env_file])
    assert rendered["services"]["connect"]["build"]["args"]["KAFKA_VERSION"], "the project's .env still applies"
    cfg = StackConfig.from_env(pipeline_env(variables, {}))
    assert_published_on(rendered["services"], str(cfg.pg_port), str(cfg.kafka_port), str(cfg.connect_port))
    assert (cfg.pg_host, cfg.kafka_host, cfg.connect_host) == ("127.0.0.1",) * 3


def test_connector_registered_against_compose_reaches_postgres_inside_the_network(render, tmp_path):
    variables = compose_variables({})
    rendered = render(env_files=[ROOT / ".env", write_env_file(variables, tmp_path)])
    config = connect.connector_config(StackConfig.from_env(pipeline_env(variables, {})))
    assert config["database.hostname"] == "postgres" and "postgres" in rendered["services"]
    assert "ports" in rendered["services"]["postgres"]
    assert config["database.port"] == "5432"
    postgres_command = rendered["services"]["postgres"]["command"]
    assert "port=" not in " ".join(postgres_command), "the server listens on 5432 inside the network"


def test_native_connector_still_uses_pghost_and_pgport():
    config = connect.connector_config(StackConfig.from_env({"PGHOST": "127.0.0.1", "PGPORT": "6543"}))
    assert (config["database.hostname"], config["database.port"]) == ("127.0.0.1", "6543")

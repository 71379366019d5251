"""A single-node KRaft Kafka broker (broker and controller in one JVM) under ``$STACK_HOME/kafka``."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from stack.assemble import lib_dir
from stack.config import StackConfig
from stack.processes import StepError, jvm_env, read_pid, start_process, stop_process

MAIN_CLASS = "kafka.Kafka"
HEAP = "-Xmx768m"


def java() -> str:
    path = shutil.which("java")
    if path is None:
        raise StepError("java not found; install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    return path


def classpath(cfg: StackConfig) -> str:
    return f"{lib_dir(cfg)}/*"


def data_dir(cfg: StackConfig) -> Path:
    return cfg.home / "kafka" / "data"


def config_file(cfg: StackConfig) -> Path:
    return cfg.home / "kafka" / "server.properties"


def log_file(cfg: StackConfig) -> Path:
    return cfg.logs / "kafka.log"


def pid_file(cfg: StackConfig) -> Path:
    return cfg.run / "kafka.pid"


def write_config(cfg: StackConfig) -> Path:
    host, controller = cfg.kafka_host, f"{cfg.kafka_host}:{cfg.controller_port}"
    lines = [
        "# Written by python -m stack on every start.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={controller}",
        f"listeners=PLAINTEXT://{host}:{cfg.kafka_port},CONTROLLER://{controller}",
        f"advertised.listeners=PLAINTEXT://{host}:{cfg.kafka_port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data_dir(cfg)}",
        # One node: every internal topic has one replica.
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # Topics are created on first write by Connect; one partition keeps each table's rows in commit order.
        "num.partitions=1",
        "auto.create.topics.enable=true",
        # A consumer group starts at once instead of waiting 3 s for more members.
        "group.initial.rebalance.delay.ms=0",
        "",
    ]
    path = config_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def ensure_formatted(cfg: StackConfig) -> bool:
    """Format the KRaft storage once (``StorageTool format --standalone``); True when it was formatted."""
    if (data_dir(cfg) / "meta.properties").exists():
        return False
    config = write_config(cfg)
    result = subprocess.run(
        [
            java(),
            "-cp",
            classpath(cfg),
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            _cluster_id(),
            "-c",
            str(config),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        log = log_file(cfg)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as out:
            out.write(result.stdout + result.stderr)
        raise StepError(f"kafka: formatting the storage failed; see {log}")
    return True


def start(cfg: StackConfig) -> int:
    config = write_config(cfg)
    argv = [java(), HEAP, "-cp", classpath(cfg), MAIN_CLASS, str(config)]
    # The broker needs no credential of ours (PGPASSWORD stays out of its /proc/<pid>/environ).
    return start_process(argv, log_file(cfg), pid_file(cfg), env=jvm_env())


def marks(cfg: StackConfig) -> tuple[str, str]:
    """What our worker's command line holds: its main class and this stack's config file."""
    return MAIN_CLASS, str(config_file(cfg))


def running_pid(cfg: StackConfig) -> int | None:
    return read_pid(pid_file(cfg), marks(cfg))


def answers_metadata(cfg: StackConfig) -> bool:
    """True when the broker answers a metadata request (kafka-python)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap, request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


# Created by `up`, so a consumer started before the first row (the live demo) finds its topic.
# One partition keeps each table's rows in commit order; the .invalid topics hold rows MnistToCsv rejected.
TOPICS = (
    "tf.public.mnist_train",
    "tf.public.mnist_test",
    "tf.public.mnist_train.invalid",
    "tf.public.mnist_test.invalid",
)


def ensure_topics(cfg: StackConfig, topics: tuple[str, ...] = TOPICS) -> list[str]:
    """Create the pipeline's topics that do not exist yet; return the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap, request_timeout_ms=10000)
    except (KafkaError, OSError) as error:
        # NoBrokersAvailable / "Unable to bootstrap": the broker died or never listened on that address.
        raise StepError(
            f"kafka: creating topics failed: no broker answers at {cfg.kafka_bootstrap} ({error}); see {log_file(cfg)}"
        ) from None
    try:
        missing = [t for t in topics if t not in set(admin.list_topics())]
        if missing:
            try:
                admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in missing])
            except TopicAlreadyExistsError:
                pass
        return missing
    except KafkaError as error:
        raise StepError(f"kafka: creating topics failed: {error}; see {log_file(cfg)}") from None
    finally:
        admin.close()


def stop(cfg: StackConfig) -> bool:
    return stop_process(pid_file(cfg), marks(cfg), timeout=30)

"""A single-node KRaft Kafka broker (broker and controller in one JVM) under ``$STACK_HOME/kafka``."""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from stack.config import StackConfig
from stack.contract import MNIST
from stack.jvm_service import JvmService, classpath, java, jvm_env
from stack.processes import StepError

SERVICE = JvmService("kafka", main_class="kafka.Kafka", config_name="server.properties", heap="-Xmx768m")
# The service's files and lifecycle under the names the rest of the code (tests, bench) calls.
config_file = SERVICE.config_file
log_file = SERVICE.log_file
pid_file = SERVICE.pid_file
running_pid = SERVICE.running_pid
stop = SERVICE.stop


def data_dir(cfg: StackConfig) -> Path:
    return SERVICE.home(cfg) / "data"


def write_config(cfg: StackConfig) -> Path:
    host, controller = cfg.kafka_host, f"{cfg.kafka_host}:{cfg.controller_port}"
    return SERVICE.write_config(
        cfg,
        [
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
            # Topics of other tables are created on first write, with TOPIC_PARTITIONS partitions as `up` makes the
            # pipeline's: the connector names the partition of every change (PartitionRouting, by the row's id) up
            # to that count, and a record for a partition the topic lacks would fail its task.
            f"num.partitions={cfg.partitions}",
            "auto.create.topics.enable=true",
            # A consumer group starts at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms=0",
        ],
    )


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
    write_config(cfg)
    # The broker needs no credential of ours (PGPASSWORD stays out of its /proc/<pid>/environ).
    return SERVICE.start(cfg, env=jvm_env())


def _admin(cfg: StackConfig) -> AdminClient:
    """A librdkafka admin client of the broker; it connects lazily: the first request says whether it answers."""
    return AdminClient(
        {
            "bootstrap.servers": cfg.kafka_bootstrap,
            # librdkafka logs every refused connection to stderr from its own threads (several a second while
            # the broker starts or is down); the outcome reaches us as the request's error, so it stays quiet.
            "log_level": 0,
        }
    )


def _topics(admin: AdminClient, timeout: float) -> dict[str, int]:
    """The broker's topics and their partition counts; KafkaException when it does not answer within ``timeout``
    seconds (without a timeout librdkafka retries a broker that is down for ever)."""
    return {name: len(topic.partitions) for name, topic in admin.list_topics(timeout=timeout).topics.items()}


def answers_metadata(cfg: StackConfig) -> bool:
    """True when the broker answers a metadata request within 3 seconds."""
    try:
        _topics(_admin(cfg), timeout=3)
        return True
    except KafkaException:
        return False


# Created by `up`, so a consumer started before the first row (the live demo) finds its topic, with
# TOPIC_PARTITIONS partitions each: the readers of one consumer group share them. The connector puts every change
# of a row on the partition its id hashes to (the key stays the label: hashing that would send every "7" to one
# partition). The .invalid topics hold rows MnistToCsv rejected; the predictions topic is what consumer.predict
# writes and Debezium's JDBC sink reads into the predictions table.
TOPICS = MNIST.data_topics()
#: The topics training replays: they keep records for DATA_RETENTION_MS (default -1, for ever) and any size.
RETAINED = MNIST.replayed_topics()


def retention_config(cfg: StackConfig) -> dict[str, str]:
    """The topic settings of a replayed topic: DATA_RETENTION_MS, and no size limit (time is the one bound)."""
    return {"retention.ms": str(cfg.data_retention_ms), "retention.bytes": "-1"}


def ensure_topics(
    cfg: StackConfig, topics: tuple[str, ...] = TOPICS, retained: tuple[str, ...] = RETAINED
) -> list[str]:
    """Create the pipeline's topics that do not exist yet, the ``retained`` ones with ``retention_config``, and
    set that config on the ``retained`` ones that exist; return the names created.

    Idempotent: a topic that another client (Connect's auto-creation) made in the meantime is no error.
    """
    admin = _admin(cfg)
    try:
        existing = _topics(admin, timeout=10)
    except KafkaException as error:
        # _TRANSPORT / _TIMED_OUT: the broker died or never listened on that address.
        raise StepError(
            f"kafka: creating topics failed: no broker answers at {cfg.kafka_bootstrap} ({error.args[0].str()}); "
            f"see {log_file(cfg)}"
        ) from None
    _add_partitions(cfg, admin, {t: existing[t] for t in topics if t in existing})
    missing = [t for t in topics if t not in existing]
    _create(cfg, admin, [NewTopic(t, cfg.partitions, 1, config=_topic_config(cfg, t, retained)) for t in missing])
    # Also on the ones just made: one that Connect auto-created meanwhile has the broker's default retention.
    _set_retention(cfg, admin, [t for t in topics if t in retained])
    return missing


def _topic_config(cfg: StackConfig, topic: str, retained: tuple[str, ...]) -> dict[str, str]:
    return retention_config(cfg) if topic in retained else {}


def _create(cfg: StackConfig, admin: AdminClient, new: list[NewTopic]) -> None:
    """Create ``new``; one that exists by now (another client made it) is no error."""
    if not new:
        return
    # operation_timeout: each future resolves once the controller has created the topic, so a consumer started
    # right after `up` finds it; request_timeout bounds the call when the broker stops answering meanwhile.
    for future in admin.create_topics(new, request_timeout=10, operation_timeout=10).values():
        try:
            future.result()
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StepError(f"kafka: creating topics failed: {error.args[0].str()}; see {log_file(cfg)}") from None


def _set_retention(cfg: StackConfig, admin: AdminClient, topics: list[str]) -> None:
    """Set ``retention_config`` on ``topics`` (an incremental SET: their other settings stay as they are)."""
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in retention_config(cfg).items()]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t, incremental_configs=entries) for t in topics]
    if not resources:
        return
    for future in admin.incremental_alter_configs(resources, request_timeout=10).values():
        try:
            future.result()
        except KafkaException as error:
            raise StepError(f"kafka: setting retention failed: {error.args[0].str()}; see {log_file(cfg)}") from None


def _add_partitions(cfg: StackConfig, admin: AdminClient, existing: dict[str, int]) -> None:
    """Grow topics that have fewer partitions than TOPIC_PARTITIONS (Kafka cannot shrink a topic: more are left
    as they are)."""
    grow = [NewPartitions(t, cfg.partitions) for t, count in existing.items() if count < cfg.partitions]
    if not grow:
        return
    for future in admin.create_partitions(grow, request_timeout=10, operation_timeout=10).values():
        try:
            future.result()
        except KafkaException as error:
            raise StepError(f"kafka: adding partitions failed: {error.args[0].str()}; see {log_file(cfg)}") from None


@dataclass(frozen=True)
class SetAside:
    """What an invalid topic holds: how many records, and the reason header of the newest one."""

    records: int
    last_reason: str | None
    #: False when the read stopped at its deadline before the topic's end (``records`` is then a lower bound).
    complete: bool = True


def set_aside(cfg: StackConfig, topic: str, reason_header: str, timeout: float = 10.0) -> SetAside | None:
    """Read ``topic`` (an invalid topic) as a read_committed reader of its own, nothing committed; None when it
    does not exist or holds no record.

    Counted by reading, not from offsets: with exactly-once capture each transaction's marker takes an offset too.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": cfg.kafka_bootstrap,
            "group.id": f"stack-status-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "log_level": 0,
        }
    )
    try:
        found = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        filled = [p for p in found.partitions if _holds_records(consumer, topic, p)]
        if not filled:
            return None
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in filled])
        return _read_reasons(consumer, set(filled), reason_header, time.monotonic() + timeout)
    except KafkaException:
        return None
    finally:
        consumer.close()


def _holds_records(consumer: Consumer, topic: str, partition: int) -> bool:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
    return high > low


def _read_reasons(consumer: Consumer, unread: set[int], reason_header: str, deadline: float) -> SetAside | None:
    """Count the records of the assigned partitions up to each one's end; keep the newest record's reason."""
    count, newest, reason = 0, -1, None
    while unread and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=1000, timeout=0.5):
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    unread.discard(message.partition())
                continue
            count += 1
            timestamp = message.timestamp()[1]
            if timestamp >= newest:
                newest = timestamp
                values = [value for name, value in message.headers() or [] if name == reason_header]
                reason = values[-1].decode(errors="replace") if values and values[-1] is not None else None
    return SetAside(count, reason, complete=not unread) if count else None

"""The model store on a real broker: one publisher at a time, retention, and ``consumer.models`` list/promote.

Each test writes its own topic (records straight to Kafka, no Connect involved) and its own store.
"""

from __future__ import annotations

import json
import signal
import uuid

from consumer.fill_topic import produce_records
from consumer.kafka.client import KafkaClient
from consumer.store.checkpoints import CheckpointDir
from consumer.store.versions import ModelStore
from loader.source import load_sample
from probes.deadline import poll


def own_topic(pipeline, records: int) -> str:
    client = KafkaClient.of(pipeline.bootstrap)
    topic = f"test.store.{uuid.uuid4().hex[:8]}"
    client.create_topic(topic, partitions=2)
    sample = load_sample()["train"]
    produce_records(client, topic, sample.images[:records], sample.labels[:records], partitions=2)
    return topic


def follow_args(topic: str, checkpoints, store, *extra: str) -> tuple[str, ...]:
    return (
        "consumer.train", "--follow", "--topic", topic, "--group-id", f"store-{uuid.uuid4().hex[:8]}",
        "--checkpoint-dir", str(checkpoints), "--model-dir", str(store), "--run-dir", "none", "--batch-size", "16",
        *extra,
    )  # fmt: skip


def test_a_second_publisher_into_one_store_refuses(pipeline, tmp_path):
    topic = own_topic(pipeline, 200)
    store = ModelStore(tmp_path / "store")
    first = pipeline.start(
        *follow_args(topic, tmp_path / "ckpt-a", store.directory, "--checkpoint-every-records", "50")
    )
    try:
        assert poll(lambda: store.latest_version() is not None or first.poll() is not None, 180), "no version"
        assert first.poll() is None, first.communicate()
        for second in (
            pipeline.run(*follow_args(topic, tmp_path / "ckpt-b", store.directory, "--idle-timeout", "2")),
            pipeline.run("consumer.train", "--topic", topic, "--model-dir", str(store.directory), "--epochs", "1"),
        ):
            assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
            assert second.stderr.count("\n") == 1, second.stderr
            assert f"model store {store.directory} is in use by process {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out[-2000:] + err[-2000:]
    # No number handed out twice: each vNNNN.json tells its own number, and each version came from this publisher.
    for version in store.versions():
        info = json.loads((store.directory / f"v{version:04d}.json").read_text())
        assert info["version"] == version and "ckpt-a" in info["checkpoint"]


def test_retention_keeps_the_newest_and_the_checkpoints_versions_and_models_promotes(pipeline, tmp_path):
    topic = own_topic(pipeline, 300)
    store, checkpoints = ModelStore(tmp_path / "store"), CheckpointDir(tmp_path / "ckpt")
    run = pipeline.run(
        *follow_args(topic, checkpoints.root, store.directory, "--checkpoint-every-records", "40", "--keep-versions",
                     "2", "--idle-timeout", "3"),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    versions = store.versions()
    published = store.latest_version()
    assert published >= 7, run.stdout[-2000:]  # 300 records, a checkpoint every 40
    live = {json.loads((c / "checkpoint.json").read_text())["model_version"] for c in checkpoints.root.glob("ckpt-*")}
    assert set(versions) == {published - 1, published} | live, (versions, live)
    assert live <= set(versions)

    listed = pipeline.run("consumer.models", "--model-dir", str(store.directory), "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == len(versions) and lines[-1].startswith(f"* v{published:04d}")
    assert "prequential accuracy" in lines[-1] and "records" in lines[-1]

    promoted = pipeline.run("consumer.models", "--model-dir", str(store.directory), "promote", str(versions[0]))
    assert promoted.returncode == 0, promoted.stderr
    assert store.latest() == (versions[0], store.directory / f"v{versions[0]:04d}.keras")

"""``consumer.train --follow`` on a real broker: killed with SIGKILL mid-stream, stopped with SIGTERM, resumed,
and every record of the topic is learned exactly once or counted malformed; model versions are published.

The topic is the test's own (two partitions, records written straight to Kafka, three malformed ones among
them), so the test does not depend on Connect or on the demo tables.
"""

from __future__ import annotations

import json
import re
import signal
import uuid

from consumer.fill_topic import produce_records
from consumer.kafka.client import KafkaClient
from consumer.store.checkpoints import CheckpointDir
from consumer.store.versions import ModelStore
from loader.source import load_sample
from probes.deadline import poll
from probes.topics import end_offsets, group_offsets

RECORDS = 800
MALFORMED = 3


def follow_args(topic, group, checkpoints, store, *extra):
    return (
        "consumer.train", "--follow", "--topic", topic, "--group-id", group, "--batch-size", "16",
        "--checkpoint-dir", str(checkpoints), "--model-dir", str(store), "--run-dir", "none",
        "--checkpoint-every-records", "200", "--replay-size", "300", *extra,
    )  # fmt: skip


def consistent(checkpoint) -> None:
    """Every record before the checkpoint's offsets is learned or counted malformed, once (the topic starts at
    offset 0 on every partition and has no transaction markers)."""
    assert checkpoint.records + checkpoint.malformed == sum(checkpoint.offsets.values()), checkpoint.manifest


def test_follow_killed_stopped_and_resumed_learns_every_record_once(pipeline, tmp_path):
    topic, group = f"test.follow.{uuid.uuid4().hex[:8]}", f"follow-{uuid.uuid4().hex[:8]}"
    client = KafkaClient.of(pipeline.bootstrap)
    client.create_topic(topic, partitions=2)
    sample = load_sample()["train"]
    produce_records(client, topic, sample.images[:RECORDS], sample.labels[:RECORDS], malformed=MALFORMED, partitions=2)
    total = sum(end_offsets(pipeline.bootstrap, topic).values())
    assert total == RECORDS + MALFORMED
    checkpoints, store = CheckpointDir(tmp_path / "ckpt"), ModelStore(tmp_path / "store")
    args = follow_args(topic, group, checkpoints.root, store.directory)

    # 1. SIGKILL once a checkpoint is on disk, while records are still being learned.
    killed = pipeline.start(*args)
    try:
        assert poll(lambda: checkpoints.latest() is not None or killed.poll() is not None, 180), "no checkpoint"
        assert killed.poll() is None, killed.communicate()
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
    finally:
        if killed.poll() is None:
            killed.kill()
    at_kill = checkpoints.latest()
    consistent(at_kill)
    committed = group_offsets(pipeline.bootstrap, group, topic)
    assert all((committed.get(p) or 0) <= o for p, o in at_kill.offsets.items()), (committed, at_kill.offsets)

    # 2. Restart: it resumes at the checkpoint; SIGTERM after its own first checkpoint stops it cleanly.
    stopped = pipeline.start(*args)
    try:
        assert poll(lambda: checkpoints.latest().sequence > at_kill.sequence or stopped.poll() is not None, 180), (
            "the restarted run wrote no checkpoint"
        )
        stopped.send_signal(signal.SIGTERM)
        out, err = stopped.communicate(timeout=120)
    finally:
        if stopped.poll() is None:
            stopped.kill()
    assert stopped.returncode == 0, out[-2000:] + err[-2000:]
    assert f"resuming from {at_kill.directory}: {at_kill.records} records learned" in out
    summary = re.search(r"learned from (\d+) records in .* (\d+) malformed skipped; stopped by SIGTERM\)", out)
    assert summary, out[-2000:]
    at_stop = checkpoints.latest()
    consistent(at_stop)
    learned = int(summary.group(1)) + int(summary.group(2))
    assert at_stop.records + at_stop.malformed == at_kill.records + at_kill.malformed + learned

    # 3. Restart until idle: the rest of the topic, nothing twice, nothing skipped.
    finished = pipeline.run(*args, "--idle-timeout", "2", timeout=300)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    final = checkpoints.latest()
    consistent(final)
    assert final.records + final.malformed == total
    assert final.malformed == MALFORMED
    assert final.offsets == end_offsets(pipeline.bootstrap, topic)
    assert group_offsets(pipeline.bootstrap, group, topic) == final.offsets  # the commit follows the checkpoint
    manifest = json.loads((final.directory / "checkpoint.json").read_text())
    assert manifest["offsets"] == {str(p): o for p, o in final.offsets.items()}

    # Every checkpoint published a version (retention keeps the newest five and the checkpoints'), and latest.keras
    # is the newest, loadable.
    versions = store.versions()
    assert (
        len(versions) >= 3
        and versions[-1] == json.loads((final.directory / "checkpoint.json").read_text())["model_version"]
    )
    assert store.latest() == (versions[-1], store.directory / f"v{versions[-1]:04d}.keras")
    import keras

    model = keras.saving.load_model(store.latest_model)
    assert model.output_shape == (None, 10)
    assert model.optimizer.iterations.numpy() > 0  # the optimizer state travels with the model

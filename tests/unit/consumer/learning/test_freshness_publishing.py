"""``train --follow``'s model versions between checkpoints, on a real (small) model and store, no services: the model
alone is published when the interval passed, its ``vNNNN.json`` says what it learned, offsets move only with
checkpoints, and retention never removes the version of a live checkpoint among many model versions."""

from __future__ import annotations

import time

import keras
import numpy as np

from consumer.kafka.batches import DecodedBatch
from consumer.kafka.reader import Batch
from consumer.learning.freshness import MAX_TAG, P50_TAG
from consumer.learning.models import build_model
from consumer.learning.online import FollowSettings, _Run
from consumer.records.codec import RecordFormat
from consumer.store.checkpoints import CheckpointDir
from consumer.store.versions import ModelStore
from stack.datasets import load

IRIS = load("iris")
FEATURES = np.array([[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5], [5.8, 2.7, 4.1, 1.0]], np.float32)
NEVER = 3600.0


def settings(publish_every_s: float, keep: int | None = None) -> FollowSettings:
    return FollowSettings(
        topic="tf.public.iris_train", group_id="g", client=None, checkpoint_every_records=10**6,
        checkpoint_every_seconds=NEVER, keep_versions=keep, fmt=RecordFormat.of(IRIS),
        build=lambda: build_model(IRIS, FEATURES), publish_every_seconds=publish_every_s,
    )  # fmt: skip


def batch(partition: int, first: int, commit_ms: list[int]) -> DecodedBatch:
    """Records at ``first``.. of ``partition``, committed at ``commit_ms``, iris rows cycled; the last one a delete
    when its commit time is negative (its time is then not a learned record's)."""
    n = len(commit_ms)
    ops = [b"d" if ms < 0 else b"c" for ms in commit_ms]
    headers = [[("__op", op), ("__source_ts_ms", str(abs(ms)).encode())] for op, ms in zip(ops, commit_ms, strict=True)]
    raw = Batch([b""] * n, [b""] * n, headers, [partition] * n, {partition: first + n}, {partition: first})
    images = FEATURES[np.arange(n) % len(FEATURES)]
    return DecodedBatch(images, np.arange(n, dtype=np.int32) % 3, 0, lambda: None, raw, np.ones(n, bool))


class Scalars:
    """What ``consumer.monitoring.tensorboard.Metrics`` would write, kept in a list."""

    def __init__(self) -> None:
        self.written: list[tuple[str, float, int]] = []

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.written.append((tag, value, step))


class NoLag:
    """The one thing a step asks of its stream when metrics are on and no checkpoint is due: the lag."""

    def lag(self) -> int:
        return 0


def a_run(tmp_path, publish_every_s: float, keep: int | None = None, metrics=None) -> _Run:
    run = _Run(settings(publish_every_s, keep), CheckpointDir(tmp_path / "ckpt"), ModelStore(tmp_path / "store"),
               metrics, None, None)  # fmt: skip
    run.start({})
    return run


def test_the_model_alone_is_published_with_what_it_learned_and_no_checkpoint(tmp_path):
    run = a_run(tmp_path, publish_every_s=1e-9)
    run.step(batch(0, 0, [1_000, 3_000, 2_000]), stream=None)
    run.step(batch(1, 7, [4_000, -9_000]), stream=None)  # the delete is skipped: not learned, its time not counted

    store = run.store
    assert store.versions() == [1, 2]
    info = store.info(2)
    assert info["kind"] == "model" and info["checkpoint_version"] is None
    assert info["offsets"] == {"0": 3, "1": 9} and info["records"] == 4
    assert info["newest_commit_ms"] == 4_000
    assert "checkpoint" not in info  # retention protects checkpoints' versions only
    assert run.checkpoints.latest() is None  # nothing to resume from, nothing committed: offsets follow checkpoints
    published = keras.saving.load_model(store.latest_model)
    assert not published.compiled  # weights only: the optimizer state stays with the checkpoint
    np.testing.assert_allclose(published.predict_on_batch(FEATURES), run.model.predict_on_batch(FEATURES), atol=1e-6)


def test_nothing_is_published_before_the_interval_or_with_publishing_off(tmp_path):
    waiting = a_run(tmp_path / "waiting", publish_every_s=NEVER)
    waiting.step(batch(0, 0, [1_000]), stream=None)
    off = a_run(tmp_path / "off", publish_every_s=0)
    off.step(batch(0, 0, [1_000]), stream=None)
    assert waiting.store.versions() == [] and off.store.versions() == []
    off.publish_model()  # the quiet path publishes what was learned, whatever the interval
    assert off.store.versions() == [1]
    off.publish_model()  # nothing learned since: no new version
    assert off.store.versions() == [1]


def test_a_checkpoints_version_says_so_and_the_model_versions_after_it_name_it(tmp_path):
    run = a_run(tmp_path, publish_every_s=1e-9)
    run.step(batch(0, 0, [1_000]), stream=None)  # v1, a model version
    run.write_checkpoint(None, commit=False)  # v2
    run.step(batch(0, 1, [2_000]), stream=None)  # v3
    store = run.store
    checkpoint = store.info(2)
    assert checkpoint["kind"] == "checkpoint" and checkpoint["checkpoint_version"] == 2
    assert checkpoint["offsets"] == {"0": 1} and checkpoint["newest_commit_ms"] == 1_000
    assert run.checkpoints.latest().manifest["model_version"] == 2
    assert store.info(3)["checkpoint_version"] == 2 and store.info(3)["offsets"] == {"0": 2}
    # A restart resumes the checkpoint: its version and newest commit time too.
    resumed = a_run(tmp_path, publish_every_s=1e-9)
    resumed.step(batch(0, 1, [1_500]), stream=None)
    assert store.info(4)["checkpoint_version"] == 2 and store.info(4)["newest_commit_ms"] == 1_500


def test_retention_keeps_a_live_checkpoints_version_among_many_model_versions(tmp_path):
    run = a_run(tmp_path, publish_every_s=1e-9, keep=2)
    offset = 0

    def learn(times: int) -> None:
        nonlocal offset
        for _ in range(times):
            run.step(batch(0, offset, [offset]), stream=None)
            offset += 1

    learn(1)
    run.write_checkpoint(None, commit=False)  # v2: ckpt-000001
    first = run.checkpoint
    learn(5)  # v3..v7
    assert run.store.versions() == [2, 6, 7]
    run.write_checkpoint(None, commit=False)  # v8: ckpt-000002; ckpt-000001 stays as the previous one
    learn(5)  # v9..v13
    assert run.store.versions() == [2, 8, 12, 13]
    run.write_checkpoint(None, commit=False)  # v14: ckpt-000003; ckpt-000001 is removed, its version may go
    assert not first.directory.exists()
    assert run.store.versions() == [8, 13, 14]


def test_each_publish_logs_how_long_its_records_waited_since_their_commit(tmp_path):
    metrics = Scalars()
    run = a_run(tmp_path, publish_every_s=1e-9, metrics=metrics)
    now_ms = int(time.time() * 1000)
    run.step(batch(0, 0, [now_ms - 9_000, now_ms - 3_000, now_ms - 1_000]), stream=NoLag())
    freshness = {tag: (value, step) for tag, value, step in metrics.written if tag.startswith("freshness/")}
    assert set(freshness) == {P50_TAG, MAX_TAG}
    assert 3.0 <= freshness[P50_TAG][0] < 3.0 + 60 and 9.0 <= freshness[MAX_TAG][0] < 9.0 + 60
    assert freshness[P50_TAG][1] == 3  # the step: records learned
    run.step(batch(0, 3, [now_ms]), stream=NoLag())
    assert sum(tag == MAX_TAG for tag, _, _ in metrics.written) == 2  # the next publish: its own records only
    assert [value for tag, value, _ in metrics.written if tag == MAX_TAG][1] < 60

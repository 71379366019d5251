"""Continual training (``python -m consumer.train --follow``): test-then-train on every batch, replay against
forgetting, checkpoints that the Kafka group commit follows.

Each batch the stream hands over is first scored by the model as it is (prequential accuracy: an honest live
estimate, the model has not seen these records), then learned in one step together with as many records drawn
from a bounded replay reservoir (``consumer.learning.replay.Reservoir``) times ``replay_ratio``, then offered to the
reservoir. Memory is the model, one batch and the reservoir, whatever the topic's size.

Delivery: a checkpoint (``consumer.store.checkpoints``) holds the model, the optimizer state, the reservoir, the
counters and the next offset of every partition, written atomically; a restart reads on from its offsets, so after a
kill at any moment every record is learned exactly once by the model that continues (the records after the
last checkpoint are learned again by the restarted process, which did not keep them). The group's committed
offsets are the checkpoint's, committed only once the checkpoint is durable: they never lead it. Each checkpoint
also publishes the model as a new version in the model store (``consumer.store.versions``).
"""

from __future__ import annotations

import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from consumer.learning.replay import Reservoir
from consumer.store.checkpoints import Checkpoint, CheckpointDir, CheckpointError

LAG_EVERY_S = 2.0  # stream/lag asks the broker: at most this often
RATE_EVERY_S = 1.0


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived while the loop waited for records."""


class Stopper:
    """Turns SIGINT/SIGTERM into a clean stop: while the loop waits for records the signal interrupts the wait
    (``StopRequested``); during a training step or a checkpoint it only sets ``requested``, and the loop stops
    after that step, so a checkpoint is never cut in half by Ctrl-C."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self._interruptible = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.requested = signum
        if self._interruptible:
            self._interruptible = False
            raise StopRequested

    def install(self) -> Stopper:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @contextmanager
    def interruptible(self):
        if self.requested is not None:
            raise StopRequested
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False


@dataclass
class FollowSettings:
    topic: str
    group_id: str
    servers: str
    batch_size: int = 64
    replay_capacity: int = 5000
    replay_ratio: float = 1.0
    checkpoint_every_records: int | None = 5000
    checkpoint_every_seconds: float | None = 60.0
    idle_timeout_s: float | None = None  # None: until a signal
    window: int = 500


@dataclass
class Counters:
    """What the checkpoint carries besides the offsets: totals since the first run on this checkpoint dir."""

    records: int = 0  # learned from
    malformed: int = 0  # skipped
    scored_correct: int = 0  # prequential: right before learning
    train_steps: int = 0

    def as_manifest(self) -> dict:
        return {
            "records": self.records,
            "malformed": self.malformed,
            "prequential_correct": self.scored_correct,
            "train_steps": self.train_steps,
        }

    @classmethod
    def from_manifest(cls, manifest: dict) -> Counters:
        return cls(
            int(manifest["records"]),
            int(manifest["malformed"]),
            int(manifest.get("prequential_correct", 0)),
            int(manifest.get("train_steps", 0)),
        )


@dataclass
class FollowResult:
    counters: Counters
    run_records: int
    run_malformed: int
    seconds: float
    window_accuracy: float | None
    checkpoint: Checkpoint | None
    version: int | None
    checkpoint_seconds: list[float] = field(default_factory=list)
    stopped_by: str = "idle"
    error: str | None = None


class _Window:
    """Prequential accuracy over the last ``size`` records (whole batches)."""

    def __init__(self, size: int) -> None:
        self.size, self.parts, self.correct, self.count = size, deque(), 0, 0

    def add(self, correct: int, count: int) -> None:
        self.parts.append((correct, count))
        self.correct, self.count = self.correct + correct, self.count + count
        while self.parts and self.count - self.parts[0][1] >= self.size:
            old_correct, old_count = self.parts.popleft()
            self.correct, self.count = self.correct - old_correct, self.count - old_count

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.count if self.count else None


def commit_offsets(servers: str, group_id: str, topic: str, offsets: dict[int, int], consumer=None) -> None:
    """Commit ``offsets`` for ``group_id`` (through ``consumer`` when given, else a short-lived one)."""
    from consumer.kafka.client import KafkaClient, commit

    if consumer is not None:
        commit(consumer, KafkaClient.of(servers), topic, offsets)
    else:
        KafkaClient.of(servers).commit_group_offsets(group_id, topic, offsets)


def resume(checkpoints: CheckpointDir, topic: str, from_model: Path | None, replay_capacity: int):
    """``(model, reservoir, counters, offsets or None, checkpoint or None)`` to continue from: the newest
    checkpoint in ``checkpoints``, else ``from_model`` (or a new model) with an empty reservoir."""
    import keras

    from consumer.learning.models import build_model

    checkpoint = checkpoints.latest()
    if checkpoint is None:
        model = keras.saving.load_model(from_model) if from_model else build_model()
        return model, Reservoir(replay_capacity), Counters(), None, None
    saved_topic = checkpoint.manifest.get("topic")
    if saved_topic not in (None, topic):
        raise CheckpointError(
            f"--checkpoint-dir {checkpoints.root} holds a checkpoint of topic {saved_topic}, not {topic}: "
            "give each topic its own checkpoint directory"
        )
    try:
        model = keras.saving.load_model(checkpoint.model_path)
        reservoir = Reservoir.load(checkpoint.replay_path, replay_capacity)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load the checkpoint {checkpoint.directory}: {error}") from None
    return model, reservoir, Counters.from_manifest(checkpoint.manifest), checkpoint.offsets, checkpoint


def follow(
    settings: FollowSettings,
    checkpoints: CheckpointDir,
    store=None,
    from_model: Path | None = None,
    metrics=None,
    drift=None,
    stopper: Stopper | None = None,
    say: Callable[[str], None] = print,
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> FollowResult:
    """Learn from ``settings.topic`` until a signal (or ``idle_timeout_s`` without records), checkpointing as
    configured and once more at the end. Raises ``SourceError`` / ``CheckpointError`` when the start fails;
    a broker failure while reading ends the run with a final checkpoint and ``FollowResult.error`` set."""
    from consumer.kafka.batches import ReadOptions, open_batches
    from consumer.kafka.client import KafkaClient, SourceError

    stopper = stopper or Stopper()
    model, reservoir, counters, offsets, checkpoint = resume(
        checkpoints, settings.topic, from_model, settings.replay_capacity
    )
    if checkpoint is not None:
        say(
            f"resuming from {checkpoint.directory}: {counters.records} records learned, {counters.malformed} "
            f"malformed skipped, reading on at {_offsets_text(checkpoint.offsets)}"
        )
    stream = open_batches(
        KafkaClient.of(settings.servers),
        ReadOptions(settings.topic, settings.group_id, settings.batch_size, settings.idle_timeout_s, offsets=offsets),
    )
    for note in stream.notes:
        warn(note)
    reader = stream.reader
    learned_to = stream.start_offsets()  # next offset per partition: every record before it is counted
    # A checkpoint's offsets a partition lost to retention restart at the earliest retained record (a note says
    # so): those records are gone, so the offsets to save are where the reader really starts.
    say(f"following {settings.topic} from {_offsets_text(learned_to)} (group {settings.group_id}); Ctrl-C stops")

    window = _Window(settings.window)
    result = FollowResult(counters, 0, 0, 0.0, None, checkpoint, None)
    started = last_checkpoint_at = last_rate_at = last_lag_at = last_batch_at = time.monotonic()
    since_checkpoint, since_rate = 0, 0
    version: int | None = None
    batches = iter(stream.batches)
    try:
        while True:
            try:
                with stopper.interruptible():
                    batch = next(batches, None)
            except StopRequested:
                batch = None
            if batch is None:
                break
            n = len(batch)
            if n:
                scores = model.predict_on_batch(batch.images)
                correct = int(np.sum(np.argmax(scores, axis=1) == batch.labels))
                replay_images, replay_labels = reservoir.sample(int(round(n * settings.replay_ratio)))
                logs = model.train_on_batch(
                    np.concatenate([batch.images, replay_images]),
                    np.concatenate([batch.labels, replay_labels]),
                    return_dict=True,
                )
                reservoir.add(batch.images, batch.labels)
                counters.scored_correct += correct
                counters.train_steps += 1
                window.add(correct, n)
            counters.records += n
            counters.malformed += batch.malformed
            result.run_records += n
            result.run_malformed += batch.malformed
            learned_to.update(batch.offsets())
            last_batch_at = time.monotonic()
            since_checkpoint += n + batch.malformed
            since_rate += n

            now = time.monotonic()
            step = counters.records
            if metrics is not None and n:
                metrics.scalar("train/loss", logs["loss"], step)
                metrics.scalar("train/accuracy", logs["accuracy"], step)
                metrics.scalar("prequential/accuracy", counters.scored_correct / max(counters.records, 1), step)
                metrics.scalar("prequential/window_accuracy", window.accuracy, step)
            if metrics is not None and now - last_rate_at >= RATE_EVERY_S:
                metrics.scalar("stream/records_per_s", since_rate / (now - last_rate_at), step)
                last_rate_at, since_rate = now, 0
            if metrics is not None and now - last_lag_at >= LAG_EVERY_S:
                try:
                    metrics.scalar("stream/lag", reader.lag(), step)
                except SourceError:
                    pass  # the next read says so, in one line
                last_lag_at = now
            if drift is not None and n:
                message = drift.update(correct, n)
                if message:
                    warn(message)

            due = (settings.checkpoint_every_records and since_checkpoint >= settings.checkpoint_every_records) or (
                settings.checkpoint_every_seconds and now - last_checkpoint_at >= settings.checkpoint_every_seconds
            )
            if due and since_checkpoint:
                checkpoint, version = _checkpoint(
                    settings, checkpoints, store, model, reservoir, counters, learned_to, result, reader.consumer,
                    say, warn,
                )  # fmt: skip
                since_checkpoint, last_checkpoint_at = 0, time.monotonic()
            if stopper.requested is not None:
                break
    except SourceError as error:
        result.error = str(error)
    finally:
        stream.batches.close()  # runs the generator's finally: closes the reader
        try:
            reader.close()  # a generator never started has no finally to run
        except RuntimeError:
            pass  # already closed
    # Up to the last batch: the idle wait (or the wait for a signal) after it is not learning time.
    result.seconds = last_batch_at - started
    if stopper.requested is not None:
        result.stopped_by = signal.Signals(stopper.requested).name
    elif result.error:
        result.stopped_by = "error"
    if since_checkpoint or checkpoint is None:
        checkpoint, version = _checkpoint(
            settings, checkpoints, store, model, reservoir, counters, learned_to, result, None, say, warn,
            commit=result.error is None,
        )  # fmt: skip
    result.checkpoint, result.version = checkpoint, version
    result.window_accuracy = window.accuracy
    return result


def _checkpoint(
    settings, checkpoints, store, model, reservoir, counters, learned_to, result, consumer, say, warn, commit=True
):
    started = time.perf_counter()
    manifest = {
        **counters.as_manifest(),
        "offsets": {str(p): o for p, o in sorted(learned_to.items())},
        "topic": settings.topic,
        "group_id": settings.group_id,
        "replay": {"size": len(reservoir), "capacity": reservoir.capacity, "seen": reservoir.seen},
    }
    checkpoint = checkpoints.write(model, reservoir, manifest)
    written = time.perf_counter() - started
    if commit:
        # Only now that the checkpoint is durable: the group's offsets follow it, never lead it.
        try:
            commit_offsets(settings.servers, settings.group_id, settings.topic, dict(learned_to), consumer)
        except Exception as error:  # noqa: BLE001 - the checkpoint is what a restart uses; the commit is for lag
            warn(f"warning: checkpoint {checkpoint.sequence} written, but its offsets were not committed: {error}")
    version = store.publish(model) if store is not None else None
    result.checkpoint_seconds.append(written)
    published = f"; model version {version} in {store.directory}" if version is not None else ""
    say(
        f"checkpoint {checkpoint.sequence}: {counters.records} records learned, {counters.malformed} malformed, "
        f"offsets {_offsets_text(learned_to)}; written in {written:.2f} s, "
        f"{checkpoint.size_bytes() / 1e6:.1f} MB{published}"
    )
    return checkpoint, version


def _offsets_text(offsets: dict[int, int]) -> str:
    return ", ".join(f"{p}:{o}" for p, o in sorted(offsets.items())) or "nothing"

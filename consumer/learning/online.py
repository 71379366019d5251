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

Freshness (``consumer.learning.freshness``): between checkpoints, every ``publish_every_seconds`` (when the model
learned anything since) the model alone is published as a version too: its weights, no optimizer state, no replay
sample, no offsets committed, so a row reaches the readers of the store seconds after its commit while checkpoints
stay as costly and as rare as configured. Every version's ``vNNNN.json`` says what it learned: ``kind``
(``checkpoint`` or ``model``), ``offsets``, ``records``, ``newest_commit_ms`` and ``checkpoint_version``.

``iter_follow`` is the loop as a generator that prints nothing: it yields a ``FollowState`` after every batch
(counters, window accuracy, the last checkpoint, the lines for the user), as river's
``iter_progressive_val_score`` does; ``follow`` runs it to the end and says its lines.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from consumer.kafka.batches import Stream, open_batches
from consumer.kafka.client import KafkaClient, SourceError
from consumer.kafka.reader import ReadOptions
from consumer.learning.changes import deletes
from consumer.learning.freshness import Learned, commit_times_ms, publish_due
from consumer.learning.models import build_model, compile_model
from consumer.learning.replay import Reservoir
from consumer.records.codec import MNIST_FORMAT, RecordFormat
from consumer.store.checkpoints import Checkpoint, CheckpointDir, CheckpointError
from consumer.store.grid_models import refuse_for_training
from stack.contract import MNIST

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
    client: KafkaClient
    batch_size: int = 64
    replay_capacity: int = 5000
    replay_ratio: float = 1.0
    checkpoint_every_records: int | None = 5000
    checkpoint_every_seconds: float | None = 60.0
    idle_timeout_s: float | None = None  # None: until a signal
    window: int = 500
    keep_versions: int | None = None  # versions the store keeps (None: all)
    from_start_on_new_topic: bool = False  # a recreated topic: read it from its start instead of refusing
    fmt: RecordFormat = MNIST_FORMAT  # the records' format (the dataset's)
    build: Callable[[], object] = build_model  # a new model, when there is no checkpoint nor --from-model
    publish_every_seconds: float = 5.0  # the model alone, between checkpoints (0: only at checkpoints)
    commit_header: str = MNIST.commit_header  # the records' commit time (ms), the dataset's contract spells it


@dataclass
class Counters:
    """What the checkpoint carries besides the offsets: totals since the first run on this checkpoint dir."""

    records: int = 0  # learned from
    malformed: int = 0  # skipped
    scored_correct: int = 0  # prequential: right before learning
    train_steps: int = 0
    deletes: int = 0  # skipped: a model cannot unlearn a row

    def as_manifest(self) -> dict:
        return {
            "records": self.records,
            "malformed": self.malformed,
            "prequential_correct": self.scored_correct,
            "train_steps": self.train_steps,
            "deletes_skipped": self.deletes,
        }

    @classmethod
    def from_manifest(cls, manifest: dict) -> Counters:
        return cls(
            int(manifest["records"]),
            int(manifest["malformed"]),
            int(manifest.get("prequential_correct", 0)),
            int(manifest.get("train_steps", 0)),
            int(manifest.get("deletes_skipped", 0)),
        )


@dataclass(frozen=True)
class Message:
    """A line for the user; a ``warning`` goes to stderr."""

    text: str
    warning: bool = False


@dataclass(frozen=True)
class FollowState:
    """Where continual training stands, as ``iter_follow`` yields it: once started, after every batch, and once
    more at the end (``done``), each time with the ``messages`` since the state before."""

    counters: Counters  # a copy: later batches do not change it
    run_records: int  # learned from in this run
    run_malformed: int
    run_deletes: int
    batch_records: int  # in the batch just learned (0 at the start and the end)
    window_accuracy: float | None
    checkpoint: Checkpoint | None
    version: int | None  # the model version the last checkpoint of this run published
    checkpoint_seconds: tuple[float, ...]
    seconds: float  # from the start to the last batch: the idle wait after it is not learning time
    stopped_by: str | None = None  # at the end: "idle", "error" or the signal's name
    error: str | None = None  # at the end: the broker failure that ended the run
    done: bool = False
    messages: tuple[Message, ...] = ()


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


def resume(
    checkpoints: CheckpointDir,
    topic: str,
    from_model: Path | None,
    replay_capacity: int,
    fmt: RecordFormat = MNIST_FORMAT,
    build: Callable[[], object] = build_model,
):
    """``(model, reservoir, counters, offsets or None, checkpoint or None)`` to continue from: the newest
    checkpoint in ``checkpoints``, else ``from_model`` (or a new model, ``build()``) with an empty reservoir; the
    records are ``fmt``'s, and a model that takes another count of values is refused (``CheckpointError``)."""
    import keras  # noqa: PLC0415 - TensorFlow loads in seconds; only loading a model needs it, not --help

    checkpoint = checkpoints.latest()
    if checkpoint is None:
        if from_model:
            # A version published alone has no optimizer: it learns on with a new one.
            model = compile_model(refuse_for_training(keras.saving.load_model(from_model), from_model))
            model = _fits(model, from_model, fmt)
        else:
            model = build()
        return model, Reservoir(replay_capacity, fmt=fmt), Counters(), None, None
    saved_topic = checkpoint.manifest.get("topic")
    if saved_topic not in (None, topic):
        raise CheckpointError(
            f"--checkpoint-dir {checkpoints.root} holds a checkpoint of topic {saved_topic}, not {topic}: "
            "give each topic its own checkpoint directory"
        )
    try:
        model = refuse_for_training(keras.saving.load_model(checkpoint.model_path), checkpoint.model_path)
        model = _fits(model, checkpoint.model_path, fmt)
        reservoir = Reservoir.load(checkpoint.replay_path, replay_capacity, fmt)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"cannot load the checkpoint {checkpoint.directory}: {error}") from None
    return model, reservoir, Counters.from_manifest(checkpoint.manifest), checkpoint.offsets, checkpoint


def _fits(model, file: Path, fmt: RecordFormat):
    """``model`` when it takes ``fmt``'s records; ``CheckpointError`` (one line naming ``file``) else."""
    takes = model.input_shape[-1]
    if takes != fmt.num_features:
        raise CheckpointError(
            f"the model at {file} takes {takes} values a record, this dataset's records hold {fmt.num_features}: "
            "start a new one (another --checkpoint-dir, no --from-model)"
        )
    return model


class _Run:
    """One run of continual training: the model with its replay sample and counters, the timers that say when
    to log and checkpoint, and the messages not yet handed over."""

    def __init__(
        self, settings: FollowSettings, checkpoints: CheckpointDir, store, metrics, drift, from_model: Path | None
    ) -> None:
        self.settings, self.checkpoints, self.store, self.metrics, self.drift = (
            settings, checkpoints, store, metrics, drift,
        )  # fmt: skip
        self.model, self.reservoir, self.counters, self.resumed_offsets, self.checkpoint = resume(
            checkpoints, settings.topic, from_model, settings.replay_capacity, settings.fmt, settings.build
        )
        self.window = _Window(settings.window)
        self.version: int | None = None
        self.run_records = self.run_malformed = self.run_deletes = 0
        self.topic_id: str | None = None
        if drift is not None and self.checkpoint is not None and "drift" in self.checkpoint.manifest:
            drift.restore(self.checkpoint.manifest["drift"])
        self.checkpoint_seconds: list[float] = []
        self.error: str | None = None
        self.messages: list[Message] = []
        self.learned_to: dict[int, int] = {}  # next offset per partition: every record before it is counted
        manifest = self.checkpoint.manifest if self.checkpoint is not None else {}
        self.learned = Learned(manifest.get("newest_commit_ms"))
        self.checkpoint_version: int | None = manifest.get("model_version")  # the last checkpoint's, resumed too
        self._alone = None  # the optimizer-less copy that model versions publish, made on the first
        self.start({})

    def say(self, text: str) -> None:
        self.messages.append(Message(text))

    def warn(self, text: str) -> None:
        self.messages.append(Message(text, warning=True))

    def start(self, learned_to: dict[int, int]) -> None:
        """Learning starts now, from ``learned_to``."""
        self.learned_to = learned_to
        self.started = self.last_checkpoint_at = self.last_rate_at = self.last_lag_at = self.last_batch_at = (
            time.monotonic()
        )
        self.since_checkpoint, self.since_rate = 0, 0
        self.last_published_at, self.unpublished = self.started, 0

    def state(self, batch_records: int = 0, **end) -> FollowState:
        """The state now, with the messages since the last one (handed over: they are not said twice)."""
        messages, self.messages = tuple(self.messages), []
        return FollowState(
            replace(self.counters), self.run_records, self.run_malformed, self.run_deletes, batch_records,
            self.window.accuracy, self.checkpoint, self.version, tuple(self.checkpoint_seconds),
            self.last_batch_at - self.started,
            messages=messages, **end,
        )  # fmt: skip

    def step(self, batch, stream: Stream) -> None:
        """Test, then train on ``batch`` (its deletes skipped); log, watch for drift, and checkpoint when due."""
        learned = ~deletes(batch.headers())[batch.valid] if batch.raw is not None else np.ones(len(batch), bool)
        images, labels = batch.images[learned], batch.labels[learned]
        n, skipped = len(labels), len(batch) - len(labels)
        correct, logs = self._learn(images, labels) if n else (0, None)
        if n and batch.raw is not None:
            headers = batch.headers()
            learned_headers = [headers[i] for i in np.flatnonzero(batch.valid)[learned]]
            self.learned.add(commit_times_ms(learned_headers, self.settings.commit_header))
        self.unpublished += n
        self.counters.records += n
        self.counters.malformed += batch.malformed
        self.counters.deletes += skipped
        self.run_records += n
        self.run_malformed += batch.malformed
        self.run_deletes += skipped
        self.learned_to.update(batch.offsets())
        self.last_batch_at = time.monotonic()
        self.since_checkpoint += n + batch.malformed + skipped
        self.since_rate += n
        now = time.monotonic()
        if self.metrics is not None:
            self._log(n, logs, now, stream)
        if self.drift is not None and n:
            message = self.drift.update(correct, n)
            if message:
                self.warn(message)
        if self._due(now):
            self.checkpoint_now(stream)
        elif publish_due(now, self.last_published_at, self.settings.publish_every_seconds, self.unpublished):
            self.publish_model()

    def checkpoint_now(self, stream: Stream | None) -> None:
        """Write a checkpoint when anything was read since the last one, and restart the timers."""
        if self.since_checkpoint:
            self.write_checkpoint(stream)
            self.since_checkpoint, self.last_checkpoint_at = 0, time.monotonic()

    def _learn(self, images: np.ndarray, labels: np.ndarray) -> tuple[int, dict]:
        """Score the records with the model as it is (prequential), then learn them with replayed records."""
        scores = self.model.predict_on_batch(images)
        correct = int(np.sum(np.argmax(scores, axis=1) == labels))
        replay_images, replay_labels = self.reservoir.sample(int(round(len(labels) * self.settings.replay_ratio)))
        logs = self.model.train_on_batch(
            np.concatenate([images, replay_images]), np.concatenate([labels, replay_labels]), return_dict=True
        )
        self.reservoir.add(images, labels)
        self.counters.scored_correct += correct
        self.counters.train_steps += 1
        self.window.add(correct, len(labels))
        return correct, logs

    def _log(self, n: int, logs: dict | None, now: float, stream: Stream) -> None:
        metrics, step = self.metrics, self.counters.records
        if n:
            metrics.scalar("train/loss", logs["loss"], step)
            metrics.scalar("train/accuracy", logs["accuracy"], step)
            metrics.scalar("prequential/accuracy", self.counters.scored_correct / max(self.counters.records, 1), step)
            metrics.scalar("prequential/window_accuracy", self.window.accuracy, step)
        if now - self.last_rate_at >= RATE_EVERY_S:
            metrics.scalar("stream/records_per_s", self.since_rate / (now - self.last_rate_at), step)
            self.last_rate_at, self.since_rate = now, 0
        if now - self.last_lag_at >= LAG_EVERY_S:
            try:
                metrics.scalar("stream/lag", stream.lag(), step)
            except SourceError:
                pass  # the next read says so, in one line
            self.last_lag_at = now

    def _due(self, now: float) -> bool:
        settings = self.settings
        return bool(
            (settings.checkpoint_every_records and self.since_checkpoint >= settings.checkpoint_every_records)
            or (
                settings.checkpoint_every_seconds and now - self.last_checkpoint_at >= settings.checkpoint_every_seconds
            )
        )

    def write_checkpoint(self, stream: Stream | None, commit: bool = True) -> None:
        """Write a checkpoint, then commit its offsets (through ``stream``'s consumer, or a short-lived one when
        None) and publish the model as a new version."""
        settings, counters, learned_to = self.settings, self.counters, self.learned_to
        started = time.perf_counter()
        manifest = {
            **counters.as_manifest(),
            "offsets": {str(p): o for p, o in sorted(learned_to.items())},
            "topic": settings.topic,
            "topic_id": self.topic_id,
            "group_id": settings.group_id,
            "model_version": self.store.next_version() if self.store is not None else None,
            "newest_commit_ms": self.learned.newest_commit_ms,
            "replay": {"size": len(self.reservoir), "capacity": self.reservoir.capacity, "seen": self.reservoir.seen},
        }
        if self.drift is not None:
            manifest["drift"] = self.drift.state()
        checkpoint = self.checkpoints.write(self.model, self.reservoir, manifest)
        written = time.perf_counter() - started
        if commit:
            # Only now that the checkpoint is durable: the group's offsets follow it, never lead it.
            try:
                if stream is not None:
                    stream.commit_offsets(dict(learned_to))
                else:
                    settings.client.commit_group_offsets(settings.group_id, settings.topic, dict(learned_to))
            except Exception as error:  # noqa: BLE001 - the checkpoint is what a restart uses; the commit is for lag
                self.warn(
                    f"warning: checkpoint {checkpoint.sequence} written, but its offsets were not committed: {error}"
                )
        store = self.store
        version = None
        if store is not None:
            # Retention keeps a version whose "checkpoint" names a live checkpoint; model versions name none.
            info = {"checkpoint": str(checkpoint.directory.resolve()), **self._learned_info("checkpoint")}
            info["checkpoint_version"] = manifest["model_version"]
            version = store.publish(self.model, info, keep=settings.keep_versions)
            self.checkpoint_version = version
            self._published()
        self.checkpoint, self.version = checkpoint, version
        self.checkpoint_seconds.append(written)
        published = f"; model version {version} in {store.directory}" if version is not None else ""
        self.say(
            f"checkpoint {checkpoint.sequence}: {counters.records} records learned, {counters.malformed} malformed, "
            f"offsets {_offsets_text(learned_to)}; written in {written:.2f} s, "
            f"{checkpoint.size_bytes() / 1e6:.1f} MB{published}"
        )

    def publish_model(self) -> None:
        """Publish the model alone (weights: no optimizer state, no replay sample) as a new version when it
        learned anything since the last publish; no offsets are committed, a restart resumes the last checkpoint."""
        if self.store is None or not self.unpublished:
            return
        started = time.perf_counter()
        info = {**self._learned_info("model"), "checkpoint_version": self.checkpoint_version}
        self._alone = _weights_only(self.model, self._alone)
        version = self.store.publish(self._alone, info, keep=self.settings.keep_versions)
        self._published()
        self.say(
            f"model version {version}: {self.counters.records} records learned, offsets "
            f"{_offsets_text(self.learned_to)}; published in {time.perf_counter() - started:.2f} s"
        )

    def _learned_info(self, kind: str) -> dict:
        """What a version learned, for its ``vNNNN.json``."""
        counters = self.counters
        return {
            "kind": kind,
            "records": counters.records,
            "prequential_accuracy": counters.scored_correct / counters.records if counters.records else None,
            "topic": self.settings.topic,
            "offsets": {str(p): o for p, o in sorted(self.learned_to.items())},
            "newest_commit_ms": self.learned.newest_commit_ms,
        }

    def _published(self) -> None:
        """A version was just published: restart the publish timer and log how fresh it is."""
        now = time.time()
        self.last_published_at, self.unpublished = time.monotonic(), 0
        for tag, seconds in self.learned.delays(now).items():
            if self.metrics is not None:
                self.metrics.scalar(tag, seconds, self.counters.records)

    def finish(self, stopper: Stopper) -> FollowState:
        """The final checkpoint (unless the last batch was checkpointed already) and the final state."""
        stopped_by = "idle"
        if stopper.requested is not None:
            stopped_by = signal.Signals(stopper.requested).name
        elif self.error:
            stopped_by = "error"
        if self.since_checkpoint or self.checkpoint is None:
            self.write_checkpoint(None, commit=self.error is None)
        return self.state(stopped_by=stopped_by, error=self.error, done=True)


def iter_follow(
    settings: FollowSettings,
    checkpoints: CheckpointDir,
    store=None,
    from_model: Path | None = None,
    metrics=None,
    drift=None,
    stopper: Stopper | None = None,
) -> Iterator[FollowState]:
    """Learn from ``settings.topic`` until a signal (or ``idle_timeout_s`` without records), checkpointing as
    configured and once more at the end; yields the state once resumed, once reading, after every batch and at
    the end (``done``). Raises ``SourceError`` / ``CheckpointError`` when the start fails; a broker failure while
    reading ends the run with a final checkpoint and ``FollowState.error`` set. Prints nothing: the states carry
    the messages (``follow`` says them)."""
    stopper = stopper or Stopper()
    run = _Run(settings, checkpoints, store, metrics, drift, from_model)
    checkpoint, counters, offsets = run.checkpoint, run.counters, run.resumed_offsets
    if checkpoint is not None:
        run.say(
            f"resuming from {checkpoint.directory}: {counters.records} records learned, {counters.malformed} "
            f"malformed skipped, reading on at {_offsets_text(checkpoint.offsets)}"
        )
    yield run.state()  # before the broker is asked: when that fails, the user has still heard what was resumed
    offsets = _check_topic_id(run, settings, offsets)
    stream = _open(run, settings, offsets)
    # A checkpoint's offsets a partition lost to retention restart at the earliest retained record (a note says
    # so): those records are gone, so the offsets to save are where the reader really starts.
    learned_to = stream.start_offsets()
    run.say(f"following {settings.topic} from {_offsets_text(learned_to)} (group {settings.group_id}); Ctrl-C stops")
    run.start(learned_to)
    try:
        yield run.state()
        while stopper.requested is None:
            yield from _learn_stream(run, stream, stopper)
            if stopper.requested is not None or _idle_over(run, settings):
                break
            # The stream went quiet: publish what the model learned since the last publish, and once it is quiet
            # for half the checkpoint interval checkpoint what was read since the last one (a quiet follower's
            # offsets are committed too); then read on with a new reader, which also sees partitions added since.
            if _quiet_checkpoint_due(run, settings):
                run.checkpoint_now(stream)
            else:
                run.publish_model()
            stream.close()
            stream = _open(run, settings, dict(run.learned_to))
            run.learned_to.update({p: o for p, o in stream.start_offsets().items() if p not in run.learned_to})
    except SourceError as error:
        run.error = str(error)
    finally:
        stream.close()
    yield run.finish(stopper)


def _learn_stream(run: _Run, stream: Stream, stopper: Stopper) -> Iterator[FollowState]:
    """Learn ``stream``'s batches until it ends (quiet for the wake-up time) or a stop is requested."""
    batches = iter(stream.batches)
    while stopper.requested is None:
        try:
            with stopper.interruptible():
                batch = next(batches, None)
        except StopRequested:
            batch = None
        if batch is None:
            return
        run.step(batch, stream)
        yield run.state(len(batch))


def _wake_after(settings: FollowSettings) -> float | None:
    """How long a reader may wait for records before the loop wakes up: half the publish interval (or of the
    checkpoint interval, when only checkpoints publish), so that a quiet follower's last records are published
    within it; at most the idle timeout."""
    halves = (settings.checkpoint_every_seconds or 0) / 2, (settings.publish_every_seconds or 0) / 2
    waits = [w for w in (settings.idle_timeout_s, *halves) if w]
    return min(waits) if waits else None


def _quiet_checkpoint_due(run: _Run, settings: FollowSettings) -> bool:
    """Whether the stream has been quiet for half the checkpoint interval (the reader's wake-ups may come
    sooner, to publish), so what was read since the last checkpoint is checkpointed now."""
    half = (settings.checkpoint_every_seconds or 0) / 2
    return time.monotonic() - run.last_batch_at >= half - 0.5


def _idle_over(run: _Run, settings: FollowSettings) -> bool:
    """Whether the user's idle timeout passed since the last batch (the run then ends)."""
    idle = settings.idle_timeout_s
    return idle is not None and time.monotonic() - run.last_batch_at >= idle - 0.5


def _open(run: _Run, settings: FollowSettings, offsets: dict[int, int] | None) -> Stream:
    """A reader from ``offsets`` (None: the group's), its notes handed to the user."""
    options = ReadOptions(
        settings.topic, settings.group_id, settings.batch_size, _wake_after(settings), offsets=offsets
    )
    stream = open_batches(settings.client, options, fmt=settings.fmt)
    # The reader's notes say a group's offsets moved; a checkpoint's are said here, with the records lost.
    notes = stream.notes if offsets is None else moved_offsets(settings.topic, offsets, stream.start_offsets())
    for note in notes:
        run.warn(note)
    return stream


def moved_offsets(topic: str, wanted: dict[int, int], starts: dict[int, int]) -> list[str]:
    """One warning line a partition whose reader does not start where the checkpoint said: retention deleted
    records before they were learned (how many are lost), or the offset lies past the retained records.

    >>> moved_offsets("t", {0: 5, 1: 9, 2: 30}, {0: 5, 1: 12, 2: 0, 3: 0})  # doctest: +NORMALIZE_WHITESPACE
    ['warning: retention deleted t partition 1 offsets 9..11 before they were learned: 3 records lost,
      reading on at offset 12',
     'warning: checkpoint offset 30 on t partition 2 lies past its retained records: reading again from offset 0']
    """
    lines = []
    for p, start in sorted(starts.items()):
        offset = wanted.get(p)
        if offset is None or offset == start:
            continue
        if offset < start:
            lines.append(
                f"warning: retention deleted {topic} partition {p} offsets {offset}..{start - 1} before they were "
                f"learned: {start - offset} records lost, reading on at offset {start}"
            )
        else:
            lines.append(
                f"warning: checkpoint offset {offset} on {topic} partition {p} lies past its retained records: "
                f"reading again from offset {start}"
            )
    return lines


def _check_topic_id(run: _Run, settings: FollowSettings, offsets: dict[int, int] | None) -> dict[int, int] | None:
    """The offsets to start from once the topic is known to be the checkpoint's; ``CheckpointError`` when it was
    recreated since (its offsets would name other records) unless ``from_start_on_new_topic``."""
    run.topic_id = settings.client.topic_id(settings.topic)
    saved = run.checkpoint.manifest.get("topic_id") if run.checkpoint is not None else None
    if saved is None or saved == run.topic_id:
        return offsets
    if not settings.from_start_on_new_topic:
        raise CheckpointError(
            f"topic {settings.topic} was recreated since checkpoint {run.checkpoint.directory} (topic id {saved}, "
            f"now {run.topic_id}): its offsets name other records; pass --from-start-on-new-topic to read the new "
            f"topic from its start with this model, or remove {run.checkpoints.root} to start over"
        )
    run.warn(f"warning: topic {settings.topic} was recreated (topic id {run.topic_id}): reading it from its start")
    return {}


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
) -> FollowState:
    """``iter_follow`` to its end, its messages said as they come (``warn`` for warnings); the final state."""
    for state in iter_follow(settings, checkpoints, store, from_model, metrics, drift, stopper):
        for message in state.messages:
            (warn if message.warning else say)(message.text)
    return state


def _weights_only(model, alone=None):
    """A model of ``model``'s architecture and weights without its optimizer (readers need the weights; the
    file is a third of the size for MNIST's CNN): ``alone`` (the copy an earlier call returned) refreshed, or a
    new one; ``model`` itself when its class cannot be rebuilt from its configuration (a subclassed model)."""
    if alone is None:
        try:
            alone = model.__class__.from_config(model.get_config())
        except Exception:  # noqa: BLE001 - a model that cannot be rebuilt is published whole, optimizer and all
            return model
    alone.set_weights(model.get_weights())
    return alone


def _offsets_text(offsets: dict[int, int]) -> str:
    return ", ".join(f"{p}:{o}" for p, o in sorted(offsets.items())) or "nothing"

"""``python -m consumer.evaluate``: live accuracy of the saved model on the test topic, batch by batch.

Prints a line after every batch (records so far, batch accuracy, running accuracy and loss) and one summary
line at the end: after ``--idle-timeout`` seconds without records, or on Ctrl-C or SIGTERM (after the batch in hand).

``--model`` naming a model store's ``latest.keras`` (``latest.json`` beside it, ``consumer.store.versions``) follows
the store: the newest version is loaded at the start and again whenever ``latest.json`` names a newer one,
checked between batches; each live line then ends with the version that scored it (``model v0007``). Any other
``.keras`` file is loaded once. ``--run-dir`` writes the figures for TensorBoard (``consumer.monitoring.tensorboard``).

A bounded run (without ``--follow``) reads the topic as the table: a row's latest version counts once (an update
replaces its earlier score), a deleted row (``__op`` = ``d``) leaves the running accuracy; records without row
headers (the tfio source has none) count one each. ``--follow`` scores every version as it comes and skips
deletions. The summary says records and rows. Exit codes: 0 done, 1 failure with one line on stderr (model,
broker, topic, anything unexpected), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from consumer.cli import (
    CommandError,
    add_group_flag,
    add_model_flag,
    add_topic_flags,
    prepare,
    refuse,
    run_prefix,
    stop_on_signals,
)
from consumer.kafka.batches import DecodedBatch, ReadOptions, Stream, add_source_flag, open_batches
from consumer.kafka.client import SourceError
from consumer.learning.scoring import class_probabilities
from consumer.monitoring.tensorboard import Metrics, RateMeter, timestamped_run
from consumer.records.codec import RecordFormat
from consumer.records.predictions import HeaderError, is_delete, row_ref
from consumer.store.source import ModelSource
from stack.contract import MNIST, Contract
from stack.errors import first_line

FOLLOW_IDLE_TIMEOUT_S = 24 * 3600  # --follow: tfio's -1 ("forever") is broken, so wait a day instead
LAG_EVERY_S = 1.0  # stream/lag asks the broker: at most once a second
AUTO_RUN = "auto"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.evaluate",
        description="Evaluate the saved model on the test topic as rows arrive, printing live accuracy.",
    )
    add_topic_flags(parser, predictions=False)
    add_group_flag(parser, "evaluate", "a new run continues after the records an earlier run read")
    parser.add_argument(
        "--instance",
        help="a stable name for this process in the group (static membership: a restart takes its partitions back "
        "at once instead of after the 10 s session timeout); processes of one group need different names",
    )
    parser.add_argument(
        "--start",
        choices=["earliest", "latest"],
        default="earliest",
        help="where a new group starts: the whole topic (earliest, default) or only rows arriving from now (latest)",
    )
    add_source_flag(parser)
    parser.add_argument("--batch-size", type=int, default=32, help="records per live line (default 32)")
    parser.add_argument(
        "--idle-timeout", type=float, default=10.0, help="end after this many seconds without records (10)"
    )
    parser.add_argument("--follow", action="store_true", help="run until Ctrl-C instead of ending when idle")
    add_model_flag(parser, "load")
    parser.add_argument(
        "--run-dir",
        nargs="?",
        const=AUTO_RUN,
        help="write TensorBoard scalars (evaluate/accuracy, evaluate/loss, stream/records_per_s, stream/lag) to "
        "this directory; the flag alone: runs/evaluate-<time> (runs/evaluate-<dataset>-<time> for a dataset other "
        "than mnist; default: none written)",
    )
    return parser


# Keras' SparseCategoricalCrossentropy clips probabilities so: the losses printed are the ones it would give.
EPSILON = 1e-7


@dataclass
class RunningScore:
    """Accuracy and mean loss so far. ``as_table``: over the rows, each row's latest version once and deleted rows
    removed (memory: one entry a row); else over every record scored.

    >>> score = RunningScore(as_table=True)
    >>> score.add(("t", 1), True, 0.1); score.add(("t", 2), False, 2.0); score.add(("t", 1), False, 1.0)
    >>> score.remove(("t", 2)); (score.records, score.rows, score.accuracy, round(score.loss, 3))
    (3, 1, 0.0, 1.0)
    """

    as_table: bool = True
    records: int = 0
    correct: int = 0
    loss_sum: float = 0.0
    malformed: int = 0
    deleted: int = 0
    unkeyed: int = 0  # records scored that name no row: one each
    _latest: dict[tuple[str, int], tuple[bool, float]] = field(default_factory=dict)

    def add(self, row: tuple[str, int] | None, correct: bool, loss: float) -> None:
        """One record scored; it replaces ``row``'s earlier version when reading as the table."""
        self.records += 1
        if self.as_table and row is not None:
            self._forget(row)
            self._latest[row] = (correct, loss)
        else:
            self.unkeyed += 1
        self.correct += int(correct)
        self.loss_sum += loss

    def remove(self, row: tuple[str, int]) -> None:
        """``row`` was deleted: it no longer counts (reading as the table)."""
        self.deleted += 1
        if self.as_table:
            self._forget(row)

    def _forget(self, row: tuple[str, int]) -> None:
        earlier = self._latest.pop(row, None)
        if earlier is not None:
            self.correct -= int(earlier[0])
            self.loss_sum -= earlier[1]

    @property
    def rows(self) -> int:
        """What the accuracy is over: rows (and unkeyed records) when reading as the table, else records."""
        return len(self._latest) + self.unkeyed

    @property
    def accuracy(self) -> float:
        return self.correct / self.rows if self.rows else 0.0

    @property
    def loss(self) -> float:
        return self.loss_sum / self.rows if self.rows else 0.0


def record_changes(
    batch: DecodedBatch, names: Contract = MNIST
) -> list[tuple[int | None, tuple[str, int] | None, bool]]:
    """Per raw record, in order: its decoded image's index (None if it did not decode), its row (None when its
    headers, as ``names`` spells them, name none) and whether it deletes the row (a deletion names its row by its
    headers, decoded or not)."""
    headers = batch.headers()
    if not headers:  # tfio: no headers, every image a record of its own
        return [(i, None, False) for i in range(len(batch))]
    changes: list[tuple[int | None, tuple[str, int] | None, bool]] = []
    image = 0
    for record_headers, decoded in zip(headers, batch.valid.tolist(), strict=True):
        try:
            ref = row_ref(record_headers, names)
            row: tuple[str, int] | None = (ref.table, ref.id)
        except HeaderError:
            row = None
        changes.append((image if decoded else None, row, row is not None and is_delete(record_headers)))
        image += 1 if decoded else 0
    return changes


@dataclass
class Evaluation:
    """One run's state: the score, the TensorBoard figures, and when records flowed (the rate counts the time
    records flowed, not the final idle wait)."""

    source: ModelSource
    stream: Stream
    metrics: Metrics
    score: RunningScore = field(default_factory=RunningScore)
    names: Contract = MNIST  # the dataset's contract: its header names
    rate: RateMeter = field(default_factory=RateMeter)
    first_at: float | None = None
    last_at: float | None = None
    lag_at: float = 0.0

    def add(self, batch: DecodedBatch) -> None:
        """Score ``batch``, print its line, then let the source commit it."""
        self.score.malformed += batch.malformed
        self.last_at = time.perf_counter()
        self.first_at = self.first_at or self.last_at
        changes = record_changes(batch, self.names)
        scored = [index for index, _, gone in changes if index is not None and not gone]
        if not scored:
            for _, row, gone in changes:
                if gone:
                    self.score.remove(row)
            batch.commit()
            return
        source = self.source
        switched = source.refresh()  # between batches: the batch below is scored by one version only
        if switched:
            print(switched, file=sys.stderr if switched.startswith("warning") else sys.stdout, flush=True)
        probabilities = class_probabilities(source.model, batch.images[scored])
        labels = batch.labels[scored]
        hits = np.argmax(probabilities, axis=1) == labels
        losses = -np.log(np.clip(probabilities[np.arange(len(scored)), labels], EPSILON, 1.0))
        result = {index: (bool(hits[n]), float(losses[n])) for n, index in enumerate(scored)}
        for index, row, gone in changes:  # in record order: a row updated then deleted in one batch ends deleted
            if gone:
                self.score.remove(row)
            elif index is not None:
                self.score.add(row, *result[index])
        correct, score = int(np.count_nonzero(hits)), self.score
        print(
            f"records {score.records:>6}  batch accuracy {correct / len(scored):.3f}  "
            f"running accuracy {score.accuracy:.4f}  loss {score.loss:.4f}"
            f"{f'  model {source.label}' if source.version is not None else ''}",
            flush=True,
        )
        batch.commit()  # only now may the source commit: a crash before this line re-reads the batch
        self._figures(len(scored), correct / len(scored))

    def _figures(self, count: int, batch_accuracy: float) -> None:
        if not self.metrics.enabled:
            return
        self.rate.add(count)
        step = self.score.records
        self.metrics.scalar("evaluate/accuracy", self.score.accuracy, step)
        self.metrics.scalar("evaluate/loss", self.score.loss, step)
        self.metrics.scalar("evaluate/batch_accuracy", batch_accuracy, step)
        self.metrics.scalar("stream/records_per_s", self.rate.rate, step)
        if self.source.version is not None:
            self.metrics.scalar("evaluate/model_version", self.source.version, step)
        if self.stream.stoppable and time.monotonic() - self.lag_at >= LAG_EVERY_S:
            self.lag_at = time.monotonic()
            try:
                self.metrics.scalar("stream/lag", self.stream.lag(), step)
            except SourceError:
                pass  # a figure for the dashboard: the broker's answer to the next read decides the run


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        client, source, dataset = prepare(args)
    except CommandError as error:
        return refuse(error)
    idle = FOLLOW_IDLE_TIMEOUT_S if args.follow else args.idle_timeout
    options = ReadOptions(
        args.topic, args.group_id, args.batch_size, idle, args.start,
        group=args.source == "kafka", instance=args.instance, adaptive=True,
    )  # fmt: skip
    try:
        stream = open_batches(client, options, args.source, RecordFormat.of(dataset))
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for note in stream.notes:
        print(note, file=sys.stderr, flush=True)
    try:
        return _evaluate(args, source, stream, dataset)
    except Exception as error:  # noqa: BLE001 - whatever failed, the user gets one line and exit 1, no traceback
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 1


def _evaluate(args: argparse.Namespace, source: ModelSource, stream: Stream, dataset) -> int:
    """Score the stream batch by batch; the summary line at the end."""
    run_dir = timestamped_run(run_prefix(dataset, "evaluate")) if args.run_dir == AUTO_RUN else args.run_dir
    metrics = Metrics(Path(run_dir) if run_dir else None)
    run = Evaluation(source, stream, metrics, RunningScore(not args.follow), names=dataset.contract)
    version = f" version {source.label}" if source.version is not None else ""
    print(
        f"evaluating {args.model}{version} on {args.topic} (group {args.group_id}, {stream.describe()}); "
        f"{'Ctrl-C to stop' if args.follow else f'ends after {args.idle_timeout:g} s without records'}"
        f"{f'; TensorBoard scalars in {run_dir}' if run_dir else ''}",
        flush=True,
    )
    # Ctrl-C / SIGTERM stop the kafka reader after the batch in hand (its commit done) instead of interrupting
    # whatever runs; tfio's wait cannot be told to stop, so there the signal interrupts it (KeyboardInterrupt).
    with stop_on_signals(stream.stop) if stream.stoppable else contextlib.nullcontext():
        try:
            for batch in stream.batches:
                run.add(batch)
        except KeyboardInterrupt:  # tfio, or a second Ctrl-C
            pass
        except SourceError as error:  # the broker stopped answering: not the end of the stream
            print(f"error: {error} (evaluated {run.score.records} records before)", file=sys.stderr)
            return 1
        finally:
            # Leave the group now (bounded), not when the interpreter finalizes the generator at exit: a consumer
            # closed then runs rebalance callbacks in a dying interpreter and can hang forever.
            stream.close()
            run.metrics.close()
    score = run.score
    seconds = (run.last_at - run.first_at) if run.first_at else 0.0
    rate = score.records / seconds if seconds > 0 else 0.0
    over = f"{score.rows} rows, {score.deleted} deleted" if score.as_table else f"{score.deleted} deletions skipped"
    print(
        f"evaluated {score.records} records ({score.malformed} malformed skipped) in {seconds:.1f} s: "
        f"accuracy {score.accuracy:.4f}, loss {score.loss:.4f}, {rate:,.1f} records/s; {over}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

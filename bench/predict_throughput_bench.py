"""Scoring throughput: one ``consumer.predict`` catching up on a backlog, beside the model alone
(``model.predict_on_batch``) on the same images, in one run.

The predictor: a topic of the benchmark's own (``bench.predict-throughput.<run>.in``, 2 partitions; deleted at the
end with the output topics; the demo's tables and topics are never touched) is filled once with ``--records``
records (default 20,000) as the connector writes them (``bench.spark_bench.fill``: key the label, value the CSV
pixels, the ``mnist.table``/``mnist.id``/``__source_ts_ms`` headers, round-robin), so every record gets a
prediction. Each run is one ``python -m consumer.predict`` (not ``--follow``: it ends ``--idle-timeout`` s after
the backlog) with a fresh ``--group-id`` (it starts at the earliest record) and an output topic of its own, at
each of ``--batch-sizes`` (its bound on a transaction's records; default 2048 and 256). Its records/s are its own
summary line's ("... in N transactions, X s: R records/s": all records over the time from handing over its first
batch to handing over its last, so start-up is excluded and the last batch's scoring too); beside them the same
interval's rate counting only the batches it timed (all but the last), and the rate over the wall time from
starting the process to its last batch's line (its transaction committed; start-up included: importing
TensorFlow, loading and tracing the model, joining the group), and its CPU seconds (``os.wait4``).

The model alone: a fresh process of this module (``--child``) decodes the same images from the same record values
with the consumer's decoder (``decode_batch``: float32, /255), loads the same untrained CNN, and times
``predict_on_batch`` over all of them in batches of each of ``--model-batch-sizes`` (256, 1024, 2048), after one
warm-up call a size. Nothing else: no Kafka, no decode, no transaction inside the clock.

RATIO = the predictor's records/s ÷ the model alone's best records/s (the fastest size), medians over ``--reps``
(default 3; in each the model alone, then the predictor at each size). The machine is shared: each repetition's
load average (1 min) at its start and end is printed and recorded.

    python -m bench.predict_throughput_bench                   # 20,000 records, predictor 2048 256, 3 reps
    python -m bench.predict_throughput_bench --records 600 --batch-sizes 256 --model-batch-sizes 256 --reps 1 \\
        --no-record                                            # a tiny run
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import fresh_process
from bench.fresh_process import Child, untrained_model
from bench.images import rows as image_rows
from bench.record import parse, parser, print_table, record, settings, summarise
from bench.spark_bench import fill
from bench.tables import delete_topics, run
from consumer.cli import quiet_tensorflow
from probes.deadline import poll
from stack.config import StackConfig
from stack.kafka import ensure_topics

MODULE = "bench.predict_throughput_bench"
PARTITIONS = 2
#: The predictor's summary line: records predicted and read, transactions, seconds and its records/s.
SUMMARY = re.compile(
    r"^predicted (\d+) of (\d+) records .* in (\d+) transactions, ([\d.]+) s: ([\d,.]+) records/s", re.MULTILINE
)
#: Each batch's line: the records it held (the last one's records are outside the summary's interval).
BATCH = re.compile(r"^batch\s+\d+\s+records\s+(\d+)", re.MULTILINE)
#: How long one predictor run may take before the benchmark gives up.
TIMEOUT_S = 900


def sizes(text: str) -> list[int]:
    """``"2048,256"`` (or ``"2048"``) as batch sizes.

    >>> sizes("2048,256")
    [2048, 256]
    """
    return [int(size) for size in text.split(",") if size.strip()]


def model_alone(model: Path, records: int, batch_sizes: list[int]) -> dict:
    """In the child: ``predict_on_batch`` over the ``records`` images in batches of each size, after a warm-up call
    a size; records/s and seconds by size."""
    import keras  # noqa: PLC0415 - only the child loads TensorFlow

    from consumer.records.codec import decode_batch, encode_records  # noqa: PLC0415 - the child's alone
    from consumer.store.grid_models import for_scoring  # noqa: PLC0415 - imports keras

    split = image_rows("mnist_bench_spark", records)  # the images bench.spark_bench.fill writes
    keys, values = zip(*encode_records(split.images, split.labels), strict=True)
    images = decode_batch(list(values), list(keys)).images
    net = for_scoring(keras.models.load_model(model, compile=False))
    fresh_process.ready()
    figures = {}
    for size in batch_sizes:
        net.predict_on_batch(images[:size])  # the warm-up: a new batch shape may trace
        started = time.perf_counter()
        for first in range(0, len(images), size):
            net.predict_on_batch(images[first : first + size])
        seconds = time.perf_counter() - started
        figures[str(size)] = {"records_per_s": len(images) / seconds, "seconds": seconds}
    return {"records": len(images), "sizes": figures}


def predictor(cfg: StackConfig, topic: str, size: int, model: Path, work: Path, records: int, idle: float) -> dict:
    """One ``consumer.predict`` over the whole backlog of ``topic`` in a fresh group, to an output topic of its own
    (deleted after); its figures from its summary line and its batch lines."""
    suffix = uuid.uuid4().hex[:8]
    out = f"{topic.removesuffix('.in')}.out-{size}-{suffix}"
    ensure_topics(dataclasses.replace(cfg, partitions=PARTITIONS), (out,))
    argv = [sys.executable, "-m", "consumer.predict", "--topic", topic, "--predictions-topic", out,
            "--group-id", f"bench-predict-throughput-{suffix}", "--model", str(model), "--batch-size", str(size),
            "--idle-timeout", f"{idle:g}", "--bootstrap-servers", cfg.kafka.bootstrap_servers]  # fmt: skip
    child = Child.start(argv, work / f"predict-{size}-{suffix}.log")
    last_line = f" total {records}\n"  # printed once the last batch's transaction committed
    try:
        poll(lambda: child.ended() or last_line in child.output, TIMEOUT_S, 0.05)
        done_at = time.perf_counter()
        child.wait(idle + 120)
    finally:
        delete_topics(cfg, (out,))
    found = SUMMARY.search(child.output)
    if child.code != 0 or not found:
        raise RuntimeError(f"consumer.predict --batch-size {size} failed ({child.code}): {child.tail()}")
    predicted, read, transactions = (int(found.group(n)) for n in (1, 2, 3))
    if predicted != records or read != records:
        raise RuntimeError(f"consumer.predict --batch-size {size}: {predicted} predicted of {read}, not {records}")
    rate = float(found.group(5).replace(",", ""))
    seconds = read / rate if rate else 0.0  # exact where the printed seconds are rounded to 0.1
    last = int(BATCH.findall(child.output)[-1])
    wall = done_at - child.started
    return {
        "batch_size": size,
        "records_per_s": rate,
        "scoring_s": seconds,
        "transactions": transactions,
        "records_per_s_timed_batches": (read - last) / seconds if seconds else 0.0,
        "wall_s": wall,
        "wall_records_per_s": read / wall,
        "startup_s": wall - seconds,
        "cpu_s": child.cpu_s,
    }


def one_rep(cfg: StackConfig, topic: str, model: Path, work: Path, args: argparse.Namespace) -> dict:
    """The model alone, then the predictor at each batch size; the load average (1, 5, 15 min) before and after."""
    load_start = os.getloadavg()
    common = ["--model", str(model), "--records", str(args.records)]
    alone = fresh_process.run(MODULE, "--child", *common, "--model-batch-sizes", ",".join(map(str, args.model_sizes)))
    runs = [predictor(cfg, topic, size, model, work, args.records, args.idle_timeout) for size in args.sizes]
    load = {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]}
    return {"model_alone": alone["sizes"], "predictor": {str(r["batch_size"]): r for r in runs}, "load": load}


def print_rep(number: int, rep: dict) -> None:
    alone = ", ".join(f"{size} {f['records_per_s']:,.0f}" for size, f in rep["model_alone"].items())
    ours = ", ".join(
        f"{size} {f['records_per_s']:,.0f} ({f['wall_records_per_s']:,.0f} with start-up)"
        for size, f in rep["predictor"].items()
    )
    print(
        f"rep {number}: model alone records/s by batch {alone}; consumer.predict records/s by batch {ours}; "
        f"load (1 min) {rep['load']['start'][0]} -> {rep['load']['end'][0]}",
        flush=True,
    )


def medians(reps: list[dict]) -> dict:
    """Median (min, max) of every figure over the repetitions, and the ratios of the medians."""
    alone = {
        size: {key: summarise([rep["model_alone"][size][key] for rep in reps]) for key in reps[0]["model_alone"][size]}
        for size in reps[0]["model_alone"]
    }
    ours = {
        size: {key: summarise([rep["predictor"][size][key] for rep in reps]) for key in reps[0]["predictor"][size]}
        for size in reps[0]["predictor"]
    }
    best_size = max(alone, key=lambda size: alone[size]["records_per_s"]["median"])
    best = alone[best_size]["records_per_s"]["median"]
    ratios = {size: round(f["records_per_s"]["median"] / best, 3) for size, f in ours.items()}
    return {
        "model_alone": alone,
        "predictor": ours,
        "model_alone_best_batch": int(best_size),
        "ratio": ratios,
        "ratio_timed_batches": {
            size: round(f["records_per_s_timed_batches"]["median"] / best, 3) for size, f in ours.items()
        },
        "ratio_with_startup": {size: round(f["wall_records_per_s"]["median"] / best, 3) for size, f in ours.items()},
    }


def print_medians(figures: dict, records: int, reps: int) -> None:
    rows = [
        [f"model alone, predict_on_batch({size})", f"{f['records_per_s']['median']:,.0f}",
         f"{f['seconds']['median']:.2f}", "-", "-", "-", "-"]
        for size, f in figures["model_alone"].items()
    ]  # fmt: skip
    rows += [
        [f"consumer.predict --batch-size {size}", f"{f['records_per_s']['median']:,.0f}",
         f"{f['scoring_s']['median']:.2f}", f"{f['transactions']['median']:.0f}",
         f"{f['records_per_s_timed_batches']['median']:,.0f}",
         f"{f['wall_records_per_s']['median']:,.0f} ({f['wall_s']['median']:.1f} s)", f"{f['cpu_s']['median']:.1f}"]
        for size, f in figures["predictor"].items()
    ]  # fmt: skip
    print_table(
        f"Scoring {records:,} records, median of {reps} (model alone: the clock around predict_on_batch only)",
        ["scorer", "records/s", "s", "transactions", "records/s, timed batches", "records/s with start-up (s)",
         "CPU s"],
        rows,
    )  # fmt: skip
    best = figures["model_alone_best_batch"]
    for size, ratio in figures["ratio"].items():
        print(
            f"RATIO consumer.predict --batch-size {size} / model alone at {best}: {ratio:.2f} "
            f"(timed batches {figures['ratio_timed_batches'][size]:.2f}, with start-up "
            f"{figures['ratio_with_startup'][size]:.2f})"
        )


def batch_sizes(values: list[str]) -> list[int]:
    """``--batch-sizes 2048 256`` or ``--batch-sizes 2048,256``.

    >>> batch_sizes(["2048,256", "64"])
    [2048, 256, 64]
    """
    return [size for value in values for size in sizes(value)]


def build_parser() -> argparse.ArgumentParser:
    flags = parser(MODULE, __doc__, reps=3)
    flags.add_argument("--records", type=int, default=20_000, help="records on the benchmark's topic (20000)")
    flags.add_argument("--batch-sizes", nargs="+", default=["2048,256"], help="consumer.predict's (2048,256)")
    flags.add_argument("--model-batch-sizes", default="256,1024,2048", help="the model alone's (256,1024,2048)")
    flags.add_argument("--idle-timeout", type=float, default=2.0, help="consumer.predict's --idle-timeout (2)")
    flags.add_argument("--model", type=Path, help="model to score with (default: an untrained CNN)")
    flags.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return flags


def main(argv: list[str] | None = None) -> int:
    flags = build_parser()
    args = parse(flags, argv)
    args.sizes, args.model_sizes = batch_sizes(args.batch_sizes), sizes(args.model_batch_sizes)
    if min(args.records, args.reps, *args.sizes, *args.model_sizes) < 1:
        flags.error("--records, --reps and the batch sizes must be >= 1")
    if args.child:
        quiet_tensorflow()
        fresh_process.report(model_alone(args.model, args.records, args.model_sizes))
        return 0
    cfg = settings(args)
    topic = f"bench.predict-throughput.{uuid.uuid4().hex[:8]}.in"
    reps = []
    try:
        with tempfile.TemporaryDirectory(prefix="predict-throughput-") as work:
            model = args.model or untrained_model(Path(work))
            ensure_topics(dataclasses.replace(cfg, partitions=PARTITIONS), (topic,))
            fill(cfg, topic, args.records, PARTITIONS)
            for number in range(1, args.reps + 1):
                reps.append(one_rep(cfg, topic, model, Path(work), args))
                print_rep(number, reps[-1])
    finally:
        delete_topics(cfg, (topic,))
    figures = medians(reps)
    best_size = max(figures["ratio"], key=figures["ratio"].get)
    figures["headline"] = {"batch_size": int(best_size), "ratio": figures["ratio"][best_size]}
    print_medians(figures, args.records, args.reps)
    headline = figures["headline"]["ratio"]
    print(f"RATIO (headline) = consumer.predict at its best / the model alone at its best = {headline:.2f}")
    results = {"records": args.records, "partitions": PARTITIONS, "reps": args.reps, **figures, "runs": reps}
    return record(args, "predict_throughput", results)


if __name__ == "__main__":
    sys.exit(run(main))

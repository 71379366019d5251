"""Where commit -> Kafka stalls come from: each row's latency split into its stages, and the JVMs' pauses beside it.

Rows are inserted at ``--rates`` (default 1,000 rows/s, 100 commits a second) into the benchmark's own table
``public.mnist_bench_stall`` (``bench/tables.py``; the demo's tables and topics are never touched), captured by
the stack's connector with exactly once as configured. For every row:

* **capture**: COMMIT returned -> the record's CreateTime (set by Connect's producer when the connector handed the
  record over: WAL decoding, Debezium's queue and poll, the transform);
* **delivery**: CreateTime -> a read_committed consumer of this benchmark has it (the producer's batch, the
  broker's append, Connect's transaction commit and its markers, the fetch).

Meanwhile ``jstat -gc`` samples the broker's and Connect's JVMs every 20 ms; a garbage collection seen between
two samples counts as a pause of its measured length within that interval. Over JMX (``bench.jmx``), also every
20 ms: the time the broker spent on each kind of a transactional producer's requests, the time Connect's producer
spent in ``commitTransaction``, and three running counts of the changes' way through Connect (Debezium read them
from the WAL stream, the task polled them, the task sent them), so a stall shows which of them stood still.
The first ``--warm-up-seconds`` of rows are not measured: the benchmark's topic is new, and Connect's producer
learns it from the first records. A stalled row is one slower than
``--stall-ms`` (100); stalled rows whose commits are less than a second apart form one episode, and each episode
is put down to a broker pause, a Connect pause, both or neither when its window (first commit .. last arrival)
overlaps such a pause. The load average is recorded: on this shared 2-core machine a busy neighbour stalls
everything at once.

    python -m stack up
    python -m bench.stall_bench                                   # 1,000 rows/s, 10 s, 3 repetitions
    python -m bench.stall_bench --rates 200 --seconds 2 --reps 1 --no-record   # a tiny run
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from confluent_kafka import Message

from bench import jmx
from bench.arrivals import Arrivals, committed_at, write_run
from bench.record import add_rate_flags, parse, parser, percentiles, print_table, record, settings, summarise
from bench.tables import bench_table
from stack.config import StackConfig
from stack.contract import MNIST

TABLE = "mnist_bench_stall"
TOPIC = MNIST.of_table(TABLE)
SAMPLE_MS = 20
EPISODE_GAP_S = 1.0
QUERIES = {"kafka": jmx.BROKER, "connect": jmx.CONNECT}


class PauseLog(threading.Thread):
    """``jstat -gc <pid> 20`` in a thread: ``pauses`` holds ``(from, to, seconds)`` for each interval between two
    samples in which the JVM collected garbage (young or full), ``time.time()`` of the samples."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name=f"jstat-{pid}")
        self.process = subprocess.Popen(
            ["jstat", "-gc", str(pid), str(SAMPLE_MS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pauses: list[tuple[float, float, float]] = []

    def run(self) -> None:
        columns: list[str] = []
        last: tuple[float, float] | None = None  # (sampled at, total GC seconds so far)
        for line in self.process.stdout:
            now = time.time()
            fields = line.split()
            if fields and not fields[0][0].isdigit():
                columns = fields
                continue
            if not columns or len(fields) != len(columns):
                continue
            total = float(fields[columns.index("GCT")])
            if last is not None and total > last[1]:
                self.pauses.append((last[0], now, total - last[1]))
            last = (now, total)

    def finish(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.join(10)


class TimedArrivals(Arrivals):
    """Arrivals that also keep each record's CreateTime (seconds), per row number."""

    def __init__(self, servers: str, topics: dict[str, str]) -> None:
        super().__init__(servers, topics)
        self.created: dict[int, float] = {}

    def reset(self, rows) -> None:
        super().reset(rows)
        self.created = {}

    def on_record(self, message: Message, now: float) -> None:
        super().on_record(message, now)
        number = self.rows.number_of(message.value()) if self.rows else None
        if number is not None:
            self.created.setdefault(number, message.timestamp()[1] / 1000)


@dataclass
class Episode:
    """Stalled rows whose commits lie close together."""

    start: float
    end: float  # the last arrival
    rows: int = 0
    worst_ms: float = 0.0
    causes: set[str] = field(default_factory=set)


def episodes(stalled: list[tuple[float, float, float]]) -> list[Episode]:
    """``stalled``: ``(commit, arrival, latency ms)`` of the stalled rows; episodes in commit order.

    >>> [(e.rows, e.worst_ms) for e in episodes([(0.0, 0.2, 200), (0.5, 0.6, 100), (3.0, 3.3, 300)])]
    [(2, 200), (1, 300)]
    """
    found: list[Episode] = []
    for commit, arrival, ms in sorted(stalled):
        if not found or commit - found[-1].start > EPISODE_GAP_S + (found[-1].end - found[-1].start):
            found.append(Episode(commit, arrival))
        episode = found[-1]
        episode.end, episode.rows, episode.worst_ms = (
            max(episode.end, arrival),
            episode.rows + 1,
            max(episode.worst_ms, ms),
        )
    return found


def attribute(found: list[Episode], pauses: dict[str, list[tuple[float, float, float]]]) -> None:
    """Name the JVMs that paused within each episode's window."""
    for episode in found:
        for jvm, log in pauses.items():
            if any(start <= episode.end and end >= episode.start for start, end, _ in log):
                episode.causes.add(jvm)


def pids(cfg: StackConfig) -> dict[str, int]:
    """The broker's and Connect's process ids, from the stack's pid files."""
    return {name: int((cfg.home / "run" / f"{name}.pid").read_text().split()[0]) for name in ("kafka", "connect")}


def measure(cfg: StackConfig, arrivals: TimedArrivals, rate: int, seconds: float, stall_ms: float) -> dict:
    """One run at ``rate``: the stages' percentiles and the stall episodes with their causes."""
    # Without a JDK's jstat (a JRE alone) the stages are still measured; every episode then reads "neither".
    logs = {name: PauseLog(pid) for name, pid in pids(cfg).items()} if shutil.which("jstat") else {}
    samplers = start_samplers(cfg)
    for log in logs.values():
        log.start()
    load = os.getloadavg()[0]
    began = time.time()
    rows = write_run(cfg.postgres, TABLE, rate, seconds, arrivals)
    arrivals.latencies(rows)
    for log in [*logs.values(), *samplers.values()]:
        log.finish()
    arrived = arrivals.arrived[TOPIC]
    commits = {n: committed_at(rows, n) for n in arrived}
    total = np.array([(arrived[n] - commits[n]) * 1000 for n in arrived])
    capture = np.array([(arrivals.created[n] - commits[n]) * 1000 for n in arrived])
    found = episodes([(commits[n], arrived[n], ms) for n, ms in zip(arrived, total, strict=True) if ms > stall_ms])
    attribute(found, {name: log.pauses for name, log in logs.items()})
    return {
        "load_1m": load,
        "total": percentiles(total),
        "capture": percentiles(capture),
        "delivery": percentiles(total - capture),
        "episodes": len(found),
        "stalled_rows": sum(e.rows for e in found),
        "by_cause": {cause: sum(1 for e in found if _cause(e) == cause) for cause in CAUSES},
        "pauses_ms": {name: [round(p * 1000, 1) for *_, p in log.pauses] for name, log in logs.items()},
        "worst_ms": [round(e.worst_ms) for e in found],
        **beside(samplers, found, began, time.time()),
    }


def start_samplers(cfg: StackConfig) -> dict[str, jmx.JmxLog]:
    """The broker's request times and Connect's producer times, sampled; none without a JDK."""
    if not jmx.available():
        return {}
    found = {name: jmx.JmxLog(pid, QUERIES[name]) for name, pid in pids(cfg).items()}
    for sampler in found.values():
        sampler.start()
    for name, sampler in found.items():
        if not sampler.wait_ready():
            raise RuntimeError(f"bench.stall_bench: could not sample {name}'s JMX attributes ({jmx.SAMPLER.name})")
    time.sleep(jmx.SETTLE_S)  # the agent each JVM has just started compiles its code first
    return found


def beside(samplers: dict[str, jmx.JmxLog], found: list[Episode], began: float, ended: float) -> dict:
    """What the broker and Connect's producer spent in each episode's window, and in a second of the whole run."""
    if not samplers:
        return {}
    pad = jmx.SAMPLE_MS / 1000

    def spent(start: float, end: float) -> dict:
        return {
            "broker": jmx.broker_summary(samplers["kafka"].samples, start, end),
            "connect": jmx.connect_summary(samplers["connect"].samples, start, end),
        }

    return {
        "run_s": round(ended - began, 2),
        "whole_run": spent(began, ended),
        "in_episodes": [
            {
                "rows": e.rows,
                "worst_ms": round(e.worst_ms),
                "window_s": round(e.end - e.start + 2 * pad, 3),
                **spent(e.start - pad, e.end + pad),
            }
            for e in found
        ],  # fmt: skip
    }


CAUSES = ("kafka", "connect", "both", "neither")


def _cause(episode: Episode) -> str:
    if len(episode.causes) == 2:
        return "both"
    return next(iter(episode.causes)) if episode.causes else "neither"


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.stall_bench", __doc__)
    add_rate_flags(flags)
    flags.set_defaults(rates=[1000])
    flags.add_argument("--stall-ms", type=float, default=100.0, help="a row slower than this is stalled (100)")
    flags.add_argument(
        "--warm-up-seconds",
        type=float,
        default=3.0,
        help="rows written first and not measured (3): the new topic's first records wait for Connect's producer "
        "to learn it",
    )
    args = parse(flags, argv)
    cfg = settings(args)
    runs: list[dict] = []
    with bench_table(cfg, "stall"):
        arrivals = TimedArrivals(cfg.kafka.bootstrap_servers, {TOPIC: TOPIC})
        arrivals.start()
        try:
            if args.warm_up_seconds > 0:
                arrivals.latencies(write_run(cfg.postgres, TABLE, args.rates[0], args.warm_up_seconds, arrivals))
            for _ in range(args.reps):
                for rate in args.rates:
                    runs.append({"rate": rate, **measure(cfg, arrivals, rate, args.seconds, args.stall_ms)})
        finally:
            arrivals.finish()
    return report(args, runs)


def report(args, runs: list[dict]) -> int:
    table = []
    for run in runs:
        causes = ", ".join(f"{cause} {count}" for cause, count in run["by_cause"].items() if count)
        table.append([
            f"{run['rate']:,}", f"{run['load_1m']:.1f}",
            *(f"{run[stage]['p50']:.0f} / {run[stage]['p99']:.0f}" for stage in ("total", "capture", "delivery")),
            f"{run['episodes']} ({run['stalled_rows']} rows)", causes or "-",
            " / ".join(str(len(run["pauses_ms"].get(jvm, []))) for jvm in ("kafka", "connect")),
        ])  # fmt: skip
    print_table(
        f"Commit -> Kafka stages (ms, p50 / p99), stalls over {args.stall_ms:g} ms and the JVM pauses beside them",
        ["rows/s", "load", "total", "capture", "delivery", "stall episodes", "paused JVM", "GCs kafka / connect"],
        table,
    )
    episode_rows = jmx.episode_rows(runs)
    if episode_rows:
        print_table("What the broker and Connect's producer spent in each stall, and in an average second of the run",
                    jmx.EPISODE_HEADER, episode_rows)  # fmt: skip
    p99 = summarise([run["total"]["p99"] for run in runs])
    print(f"total p99: median {p99['median']:.0f} ms over {p99['runs']} runs ({p99['min']:.0f}-{p99['max']:.0f})")
    return record(args, "stall", {"stall_ms": args.stall_ms, "warm_up_s": args.warm_up_seconds, "runs": runs})


if __name__ == "__main__":
    raise SystemExit(main())

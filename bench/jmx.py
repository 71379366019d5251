"""JMX attributes of the stack's JVMs sampled while a benchmark runs (``bench/JmxSampler.java``, started with the
JDK's single-file launcher), and what accrued between two moments: how many requests of a kind the broker completed
and the milliseconds they took, split into the broker's own stages, and the time Connect's producers spent in
``commitTransaction``. The JVMs need no JMX port: the sampler attaches to the process.

A broker histogram (``TotalTimeMs`` and its parts) has ``Count`` and ``Mean`` over the broker's life, so the
milliseconds of the requests completed between two samples are ``Count × Mean`` at the second minus the same at the
first; a producer's ``*-time-ns-total`` is a running total already.
"""

from __future__ import annotations

import bisect
import shutil
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

SAMPLER = Path(__file__).resolve().parent / "JmxSampler.java"
SAMPLE_MS = 20
#: Seconds a JVM's new JMX agent is left to settle before the measuring starts.
SETTLE_S = 3.0
#: The requests of a transactional producer: its records, the partitions it adds, its commit, and the markers the
#: coordinator then writes into each partition.
REQUESTS = ("Produce", "AddPartitionsToTxn", "EndTxn", "WriteTxnMarkers")
#: A request's time at the broker, in its stages: waiting for a handler thread, handled, waiting on others (the
#: purgatory), its response waiting for the network thread, and sent.
STAGES = ("RequestQueueTimeMs", "LocalTimeMs", "RemoteTimeMs", "ResponseQueueTimeMs", "ResponseSendTimeMs")
#: The requests whose stages are sampled too.
STAGED = ("EndTxn", "Produce")
STAGED_NAMES = ("TotalTimeMs", *STAGES)
BROKER = (
    *(f"kafka.network:type=RequestMetrics,name={name},request={r}#Count,Mean" for r in STAGED for name in STAGED_NAMES),
    *(
        f"kafka.network:type=RequestMetrics,name=TotalTimeMs,request={r}#Count,Mean"
        for r in REQUESTS
        if r not in STAGED
    ),
    *(f"kafka.network:type=RequestMetrics,name=ErrorsPerSec,request={request},*#Count" for request in REQUESTS),
)  # named one by one: each MBean read is a call into the broker, 50 times a second
PRODUCER_TIMES = ("txn-commit-time-ns-total", "flush-time-ns-total", "txn-begin-time-ns-total")
#: Running counts of one change's way through Connect, each a stage further: Debezium's streaming thread took the
#: change from the WAL stream into its queue, the task's poll handed it to Connect, Connect gave it to the producer.
FLOW = {
    "Debezium read": ("debezium.postgres:type=connector-metrics,context=streaming,*", "TotalNumberOfEventsSeen"),
    "task polled": ("kafka.connect:type=source-task-metrics,*", "source-record-poll-total"),
    "task sent": ("kafka.connect:type=source-task-metrics,*", "source-record-write-total"),
}
CONNECT = (
    f"kafka.producer:type=producer-metrics,client-id=*#{','.join(PRODUCER_TIMES)}",
    f"{FLOW['Debezium read'][0]}#{FLOW['Debezium read'][1]}",
    f"{FLOW['task polled'][0]}#{FLOW['task polled'][1]},{FLOW['task sent'][1]}",
)


def available() -> bool:
    """The sampler needs a JDK (``javac``'s attach module), not a JRE alone."""
    return shutil.which("java") is not None and shutil.which("javac") is not None


class Samples:
    r"""The sampler's lines as step functions: ``(MBean, attribute) -> [(time, value)]``.

    >>> samples = Samples()
    >>> name = "kafka.network:type=RequestMetrics,name=TotalTimeMs,request=EndTxn"
    >>> for line in [f"1000\t{name}\tCount\t10", f"1000\t{name}\tMean\t2.0", f"1500\t{name}\tCount\t11",
    ...              f"1500\t{name}\tMean\t38.0"]:
    ...     samples.add(line)
    >>> samples.requests("EndTxn", "TotalTimeMs", 1.2, 1.6)  # one request, 11 × 38 − 10 × 2 ms
    (1, 398.0)
    """

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)

    def add(self, line: str) -> None:
        fields = line.rstrip("\n").split("\t")
        if len(fields) == 4:
            at, mbean, attribute, value = fields
            self.series[(mbean, attribute)].append((int(at) / 1000, float(value)))

    def value_at(self, mbean: str, attribute: str, at: float) -> float:
        points = self.series.get((mbean, attribute), [])
        n = bisect.bisect_right(points, (at, float("inf")))
        return points[n - 1][1] if n else 0.0

    def mbeans(self, **keys: str) -> list[str]:
        """The MBeans seen whose name holds each ``key=value``."""
        names = {mbean for mbean, _ in self.series}
        return sorted(m for m in names if all(f"{k}={v}" in m.split(":", 1)[1].split(",") for k, v in keys.items()))

    def requests(self, request: str, name: str, start: float, end: float) -> tuple[int, float]:
        """Requests of a kind completed in ``(start, end]`` and the milliseconds they spent in ``name``."""
        found = self.mbeans(type="RequestMetrics", request=request, name=name)
        if not found:
            return 0, 0.0

        def count(at: float) -> float:
            return self.value_at(found[0], "Count", at)

        def total(at: float) -> float:
            return count(at) * self.value_at(found[0], "Mean", at)

        return int(count(end) - count(start)), total(end) - total(start)

    def slowest(self, request: str, start: float, end: float) -> float:
        """The longest mean time of the requests of a kind completed between two samples in ``(start, end]``:
        a single slow request, when it completed alone in its sample."""
        found = self.mbeans(type="RequestMetrics", request=request, name="TotalTimeMs")
        if not found:
            return 0.0
        times = sorted({at for at, _ in self.series.get((found[0], "Count"), []) if start < at <= end})
        worst, before = 0.0, start
        for at in times:
            n, total = self.requests(request, "TotalTimeMs", before, at)
            if n:
                worst = max(worst, total / n)
            before = at
        return worst

    def errors(self, request: str, start: float, end: float) -> dict[str, int]:
        """Errors the broker answered requests of a kind with in ``(start, end]``, by error name."""
        found = {}
        for mbean in self.mbeans(type="RequestMetrics", request=request, name="ErrorsPerSec"):
            error = dict(part.split("=", 1) for part in mbean.split(":", 1)[1].split(","))["error"]
            n = int(self.value_at(mbean, "Count", end) - self.value_at(mbean, "Count", start))
            if n and error != "NONE":
                found[error] = n
        return found

    def longest_still(self, pattern: str, attribute: str, start: float, end: float) -> float:
        """The longest time in ``(start, end]``, in ms, during which ``attribute`` of the first MBean whose name
        starts like ``pattern`` (up to its ``*``) did not change: a running count that stood still. The sampler
        prints a value only when it changed, so the gaps between its points are those times."""
        prefix = pattern.split("*", 1)[0]
        found = sorted(m for m, a in self.series if m.startswith(prefix) and a == attribute)
        if not found:
            return 0.0
        times = [at for at, _ in self.series[(found[0], attribute)] if start < at <= end]
        edges = [start, *times, end]
        return max(b - a for a, b in zip(edges, edges[1:], strict=False)) * 1000

    def producer_ms(self, attribute: str, start: float, end: float) -> float:
        """The most any one producer accrued of ``attribute`` (nanoseconds) in ``(start, end]``, in milliseconds."""
        spent = [
            self.value_at(mbean, attribute, end) - self.value_at(mbean, attribute, start)
            for mbean in self.mbeans(type="producer-metrics")
        ]
        return max(spent, default=0.0) / 1e6


class JmxLog(threading.Thread):
    """The sampler for one JVM in a thread; its lines go to ``samples``."""

    def __init__(self, pid: int, queries: tuple[str, ...]) -> None:
        super().__init__(daemon=True, name=f"jmx-{pid}")
        self.process = subprocess.Popen(
            ["java", str(SAMPLER), str(pid), str(SAMPLE_MS), *queries],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.samples = Samples()
        self.ready = threading.Event()

    def run(self) -> None:
        for line in self.process.stdout:
            if line.strip() == "ready":
                self.ready.set()
            else:
                self.samples.add(line)
        self.ready.set()  # ended before its first sample: nothing to wait for

    def wait_ready(self, timeout: float = 60.0) -> bool:
        return self.ready.wait(timeout) and self.process.poll() is None

    def finish(self) -> None:
        time.sleep(2 * SAMPLE_MS / 1000)  # the sample after the last moment asked about
        self.process.terminate()
        self.process.wait(10)
        self.join(10)


def broker_summary(log: Samples, start: float, end: float) -> dict:
    """What the broker did in ``(start, end]``: per request kind, the count and ms, with the stages of each."""
    summary = {}
    for request in REQUESTS:
        n, total = log.requests(request, "TotalTimeMs", start, end)
        summary[request] = {
            "n": n,
            "ms": round(total, 1),
            "slowest_ms": round(log.slowest(request, start, end), 1),
            "errors": log.errors(request, start, end),
        }
    for request in STAGED:
        summary[request]["stages"] = {stage: round(log.requests(request, stage, start, end)[1], 1) for stage in STAGES}
    return summary


def connect_summary(log: Samples, start: float, end: float) -> dict:
    """Milliseconds Connect's busiest producer spent committing, flushing and beginning in ``(start, end]``, and
    the longest each stage of the change's way stood still (``FLOW``)."""
    return {
        **{attribute: round(log.producer_ms(attribute, start, end), 1) for attribute in PRODUCER_TIMES},
        "still_ms": {stage: round(log.longest_still(*where, start, end)) for stage, where in FLOW.items()},
    }


EPISODE_HEADER = [
    "rows/s", "stall", "rows", "worst ms", "window ms", "longest still ms: Debezium read / task polled / task sent",
    "Connect in commitTransaction ms",
    "EndTxn n · ms (slowest)", "EndTxn stages ms: queue / local / remote / response",
    "Produce n · ms (slowest)", "Produce stages ms", "AddPartitionsToTxn n · ms (slowest)",
    "WriteTxnMarkers n · ms (slowest)",
]  # fmt: skip


def episode_rows(runs: list[dict]) -> list[list[str]]:
    """A row per stall episode, and one per run for an average second of that run, to compare with.

    >>> request = {"n": 1, "ms": 412.0, "slowest_ms": 412.0, "stages": dict.fromkeys(STAGES, 0.0), "errors": {}}
    >>> spent = {"broker": dict.fromkeys(REQUESTS, request), "connect": {"txn-commit-time-ns-total": 415.2,
    ...          "still_ms": {"Debezium read": 20, "task polled": 430, "task sent": 430}}}
    >>> run = {"rate": 1000, "run_s": 10.0, "whole_run": spent, "in_episodes": [{"rows": 435, "worst_ms": 418,
    ...        "window_s": 0.46, **spent}]}
    >>> for row in episode_rows([run]):
    ...     print(row[:8])
    ['1,000', '1', '435', '418', '460', '20 / 430 / 430', '415', '1 · 412 (412)']
    ['1,000', 'a second', '-', '-', '1000', '-', '42', '0.1 · 41 (412)']
    """
    rows = []
    for run in runs:
        if "in_episodes" not in run:
            continue
        for n, episode in enumerate(run["in_episodes"], 1):
            head = [f"{episode['rows']}", f"{episode['worst_ms']}", f"{episode['window_s'] * 1000:.0f}"]
            rows.append([f"{run['rate']:,}", str(n), *head, *_spent(episode, 1.0)])
        # A whole run's counts stand still before its first row and after its last: no figure to compare there.
        average = _spent(run["whole_run"], run["run_s"])
        rows.append([f"{run['rate']:,}", "a second", "-", "-", "1000", "-", *average[1:]])
    return rows


def _spent(spent: dict, seconds: float) -> list[str]:
    """The cells of one window; ``seconds`` > 1 gives a second's share (the slowest request stays as it is)."""
    broker = spent["broker"]

    def requests(kind: str) -> str:
        errors = "".join(f" ({n} {error})" for error, n in broker[kind]["errors"].items())
        figures = broker[kind]
        return f"{figures['n'] / seconds:.3g} · {figures['ms'] / seconds:.0f} ({figures['slowest_ms']:.0f}){errors}"

    def stages(kind: str) -> str:
        return " / ".join(f"{broker[kind]['stages'][stage] / seconds:.0f}" for stage in STAGES[:4])

    committing = spent["connect"].get("txn-commit-time-ns-total", 0.0) / seconds
    still = " / ".join(f"{spent['connect'].get('still_ms', {}).get(stage, 0)}" for stage in FLOW)
    return [
        still,
        f"{committing:.0f}", requests("EndTxn"), stages("EndTxn"), requests("Produce"), stages("Produce"),
        requests("AddPartitionsToTxn"), requests("WriteTxnMarkers"),
    ]  # fmt: skip

"""Does a read_committed fetch wait for ``fetch.wait.max.ms``? Commit → read_committed consumer latency with
librdkafka's ``fetch.wait.max.ms`` at its default (500 ms) and at 10 ms, side by side on the same records.

A fetch that finds nothing to return is parked by the broker for up to ``fetch.wait.max.ms`` (until
``fetch.min.bytes``, 1, is there). For a read_committed reader a transaction's records are nothing to return until
its commit marker moves the last stable offset past them; the question is whether the marker's append answers the
parked fetch at once, or the reader waits out ``fetch.wait.max.ms``. If it waited, the default setting would add up
to 500 ms (about 250 ms on average) to every record; the 10 ms one at most 10.

One run, on a topic of the benchmark's own (``bench.fetch-wait.<run>``, 2 partitions, deleted at the end; the
demo's topics are never touched): a transactional producer (confluent-kafka, the settings of
``consumer.kafka.publisher``) commits one small record a transaction (its sequence number, the partitions in turn)
at up to ``--rate`` transactions/s (200) for ``--seconds`` (10), after a warm-up of ``WARM_UP`` transactions that
every reader must have received. Two read_committed consumers (our consumers' settings, ``KafkaClient.config``,
with ``fetch.wait.max.ms`` 500 and 10; groups of their own, every partition assigned from its end), each polling
in a thread of its own, time each record as ``poll`` hands it over. Latency = that time - the time
``commit_transaction`` returned for its transaction, both ``time.monotonic()`` of this process. A negative one is a
record fetched before the producer heard its commit succeed (the marker is written before the answer); they are
counted. Per setting: p50, p95, p99 and max, medians (min–max) over ``--reps`` (3), fresh consumers each time; the
load average at the start and end of each repetition.

    python -m bench.fetch_wait_bench                           # 200 transactions/s, 10 s, 3 repetitions
    python -m bench.fetch_wait_bench --seconds 1 --reps 1 --no-record    # a tiny run
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
import time
import uuid

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.record import parse, parser, percentiles, print_table, record, settings, summarise
from bench.tables import delete_topics, run
from consumer.kafka.client import KafkaClient
from probes.deadline import poll
from probes.topics import end_offsets
from stack.kafka import ensure_topics

PARTITIONS = 2
#: Transactions before the measured ones: connections, fetch sessions and the producer's partitions set up.
WARM_UP = 20
#: How long the records may take to reach every reader after the last commit before the run fails.
ARRIVAL_TIMEOUT_S = 30.0


def label(wait_ms: int) -> str:
    """The row name of a setting.

    >>> label(500)
    'fetch.wait.max.ms=500'
    """
    return f"fetch.wait.max.ms={wait_ms}"


class Receiver(threading.Thread):
    """A read_committed consumer with ``fetch.wait.max.ms`` = ``wait_ms`` reading every partition of ``topic`` from
    ``offsets`` in a thread of its own; ``received[sequence number]`` = ``time.monotonic()`` when ``poll`` handed
    the record over (``poll`` hands each record over as soon as it is fetched)."""

    def __init__(self, servers: str, topic: str, offsets: dict[int, int], wait_ms: int) -> None:
        super().__init__(daemon=True)
        group = f"bench-fetch-wait-{wait_ms}-{uuid.uuid4().hex[:8]}"
        self.consumer = Consumer(KafkaClient.of(servers).config(group, **{"fetch.wait.max.ms": wait_ms}))
        self.consumer.assign([TopicPartition(topic, p, offset) for p, offset in offsets.items()])
        self.received: dict[int, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                message = self.consumer.poll(0.05)
                if message is not None and message.error() is None:
                    self.received.setdefault(int(message.value()), time.monotonic())
        finally:
            self.consumer.close()

    def finish(self) -> None:
        self.stopping.set()
        self.join()


def transactional_producer(servers: str) -> Producer:
    """A producer with ``consumer.kafka.publisher.Publisher``'s transaction settings but no linger, transactions
    initialised."""
    producer = KafkaClient.of(servers).producer(
        **{"transactional.id": f"bench-fetch-wait-{uuid.uuid4().hex[:8]}", "transaction.timeout.ms": 10_000,
           # One record a transaction: a linger would only hold the commit back (8 ms a commit at 5 ms, 6 at 0).
           "linger.ms": 0}
    )  # fmt: skip
    producer.init_transactions(30)
    return producer


def commit_each(producer: Producer, topic: str, numbers: range, rate: float) -> dict[int, tuple[float, float]]:
    """One transaction a number, at up to ``rate`` a second (never faster; as fast as commits go when they take
    longer): ``{number: (time.monotonic() just before its commit_transaction was called, just after it returned)}``."""
    committed: dict[int, tuple[float, float]] = {}
    started = time.monotonic()
    for n, number in enumerate(numbers):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.begin_transaction()
        producer.produce(topic, value=str(number).encode(), partition=number % PARTITIONS)
        called = time.monotonic()
        producer.commit_transaction(30)
        committed[number] = (called, time.monotonic())
    return committed


def all_received(receivers: list[Receiver], numbers: range) -> bool:
    return all(all(n in receiver.received for n in numbers) for receiver in receivers)


def one_rep(servers: str, topic: str, producer: Producer, args: argparse.Namespace, first: int) -> dict:
    """Fresh readers from the topic's end, a warm-up, then ``rate * seconds`` transactions; each setting's commit
    → received percentiles (ms), the commits a second reached and the load average before and after."""
    load_start = os.getloadavg()
    offsets = end_offsets(servers, topic)
    receivers = {wait: Receiver(servers, topic, offsets, wait) for wait in args.waits}
    for receiver in receivers.values():
        receiver.start()
    warm = range(first, first + WARM_UP)
    measured = range(warm.stop, warm.stop + max(1, round(args.rate * args.seconds)))
    try:
        commit_each(producer, topic, warm, args.rate)
        if not poll(lambda: all_received(list(receivers.values()), warm), ARRIVAL_TIMEOUT_S, 0.05):
            raise RuntimeError(f"the warm-up's {WARM_UP} records did not reach every reader within 30 s")
        started = time.monotonic()
        committed = commit_each(producer, topic, measured, args.rate)
        elapsed = time.monotonic() - started
        if not poll(lambda: all_received(list(receivers.values()), measured), ARRIVAL_TIMEOUT_S, 0.05):
            got = {label(w): sum(n in r.received for n in measured) for w, r in receivers.items()}
            raise RuntimeError(f"not every record reached every reader: {got} of {len(measured)}")
    finally:
        for receiver in receivers.values():
            receiver.finish()
    latency = {}
    for wait, receiver in receivers.items():
        received = np.array([receiver.received[n] for n in measured])
        ms = (received - np.array([committed[n][1] for n in measured])) * 1000
        from_call = percentiles((received - np.array([committed[n][0] for n in measured])) * 1000)
        latency[label(wait)] = {
            **percentiles(ms), "min": float(ms.min()), "before_commit": int((ms < 0).sum()),
            "from_call_p50": from_call["p50"], "from_call_p99": from_call["p99"],
        }  # fmt: skip
    return {
        "transactions": len(measured),
        "transactions_per_s": len(measured) / elapsed,
        "latency_ms": latency,
        "load": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
    }


def print_rep(number: int, rep: dict) -> None:
    cells = "; ".join(f"{name} p50 {f['p50']:.1f} p99 {f['p99']:.1f} ms" for name, f in rep["latency_ms"].items())
    print(
        f"rep {number}: {rep['transactions']} transactions at {rep['transactions_per_s']:.0f}/s; {cells}; "
        f"load (1 min) {rep['load']['start'][0]} -> {rep['load']['end'][0]}",
        flush=True,
    )


def medians(reps: list[dict], waits: list[int]) -> dict:
    """Median (min, max) over the repetitions of each setting's figures; the answer: the p50 of the longest wait
    less that of the shortest (about half the wait if a parked fetch waited it out, about 0 if not)."""
    names = [label(wait) for wait in waits]
    keys = ("p50", "p95", "p99", "max", "min", "from_call_p50", "from_call_p99")
    latency = {name: {k: summarise([rep["latency_ms"][name][k] for rep in reps]) for k in keys} for name in names}
    before = {name: sum(rep["latency_ms"][name]["before_commit"] for rep in reps) for name in names}
    longest, shortest = label(max(waits)), label(min(waits))
    extra = latency[longest]["p50"]["median"] - latency[shortest]["p50"]["median"]
    return {
        "latency_ms": latency,
        "before_commit": before,
        "transactions_per_s": summarise([rep["transactions_per_s"] for rep in reps]),
        "p50_difference_ms": round(extra, 2),
        # Waiting out the longest wait would add about half of it to the median; a quarter is the line.
        "waits_for_fetch_wait_max_ms": extra > max(waits) / 4,
    }


def print_medians(figures: dict, args: argparse.Namespace) -> None:
    rows = [
        [name, *(f"{f[k]['median']:,.1f}" for k in ("p50", "p95", "p99", "max", "min", "from_call_p50",
         "from_call_p99")), str(figures["before_commit"][name])]
        for name, f in figures["latency_ms"].items()
    ]  # fmt: skip
    rate = figures["transactions_per_s"]["median"]
    print_table(
        f"commit_transaction returned -> read_committed poll hands the record over, ms: median of {args.reps} x "
        f"{args.seconds:g} s at {rate:.0f} transactions/s (asked {args.rate:g})",
        ["setting", "p50", "p95", "p99", "max", "min", "from the call: p50", "p99", "before the commit returned"],
        rows,
    )
    verdict = "yes" if figures["waits_for_fetch_wait_max_ms"] else "no"
    print(
        f"does a read_committed fetch wait for fetch.wait.max.ms? {verdict}: p50 at {max(args.waits)} ms - p50 at "
        f"{min(args.waits)} ms = {figures['p50_difference_ms']:.1f} ms (waiting it out would add about "
        f"{max(args.waits) / 2:.0f})"
    )


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.fetch_wait_bench", __doc__, reps=3)
    flags.add_argument("--rate", type=float, default=200.0, help="transactions a second, at most (200)")
    flags.add_argument("--seconds", type=float, default=10.0, help="measured seconds a repetition (10)")
    flags.add_argument("--waits", type=int, nargs="+", default=[500, 10], help="fetch.wait.max.ms values (500 10)")
    args = parse(flags, argv)
    if args.rate <= 0 or args.seconds <= 0 or args.reps < 1 or min(args.waits) < 0 or len(args.waits) < 2:
        flags.error("--rate and --seconds must be > 0, --reps >= 1, two --waits or more, each >= 0")
    cfg = settings(args)
    servers = cfg.kafka.bootstrap_servers
    topic = f"bench.fetch-wait.{uuid.uuid4().hex[:8]}"
    reps = []
    try:
        ensure_topics(dataclasses.replace(cfg, partitions=PARTITIONS), (topic,))
        producer = transactional_producer(servers)
        for number in range(1, args.reps + 1):
            reps.append(one_rep(servers, topic, producer, args, first=number * 1_000_000))
            print_rep(number, reps[-1])
    finally:
        delete_topics(cfg, (topic,))
    figures = medians(reps, args.waits)
    print_medians(figures, args)
    results = {"rate": args.rate, "seconds": args.seconds, "partitions": PARTITIONS, "reps": args.reps}
    return record(args, "fetch_wait", {**results, **figures, "runs": reps})


if __name__ == "__main__":
    sys.exit(run(main))

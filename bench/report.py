"""Render docs/benchmarks.md from bench/results/*.json, so the document always shows the recorded figures.

python -m bench.report
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.jmx import EPISODE_HEADER, episode_rows
from bench.record import RESULTS

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

TARGETS = {
    "loader": "ours / upstream >= 20x",
    "latency": "ours at 1,000 rows/s: p50 <= 50 ms, p99 <= 250 ms",
    "reading": "ours (read + decode) >= 50,000 records/s on one core and >= 13x the talk's per-message decode",
    "pipeline": "streaming >= 20,000 rows/s",
    "training": "sample test accuracy >= 0.95",
    "engine_latency": "Kafka Connect and Debezium Server side by side on the same rows",
    "spark": "scoring records/s, start-up and CPU: Spark local[2] and Flink beside 1 and 2 consumer.predict processes",
    "prediction_latency": "commit → prediction → table row, 1 and 2 consumer.predict, Spark local[2] and Flink side "
    "by side; consumer.predict p50 <= 40 / p99 <= 120 ms at 200 and 1,000 rows/s; Flink's p99 3× below Spark's",
    "predict_scaling": "1, 2, 4 consumer.predict processes on 4 partitions: records/s and CPU (2 cores: a plateau)",
    "delivery": "exactly-once's cost in latency and throughput, shown beside at-least-once",
    "fetch_wait": "does a read_committed fetch wait for fetch.wait.max.ms? 500 ms (default) and 10 ms side by side",
    "predict_throughput": "consumer.predict on a backlog ÷ the model's predict_on_batch alone (RATIO) >= 0.5, one run",
    "stall": "commit → Kafka p99 <= 50 ms at 1,000 rows/s, exactly once; a stall placed in capture or delivery, "
    "beside the broker's and Connect's GC pauses",
    "training_stream": "Fashion-MNIST test accuracy >= 0.91; one epoch's peak memory flat in the topic's size",
    "freshness": "train --follow: a row in a published model within seconds of its commit (default 5 s) beside "
    "versions at checkpoints only",
    "soak": "no loss; memory within the stated bound",
}
ORDER = [
    "loader", "latency", "delivery", "fetch_wait", "engine_latency", "prediction_latency", "predict_throughput",
    "predict_scaling", "spark", "stall",
    "reading", "pipeline", "training", "training_stream", "freshness", "soak",
]  # fmt: skip

#: The reading path with kafka-python and the TF decode beside today's: label -> the older figure (None when there
#: is none), and where today's figure comes from (benchmark, reader or case; None when that path is gone).
BEFORE_AFTER = [
    ("read only, kafka-python", 52_000, ("reading", "kafka-python")),
    ("read only, confluent-kafka", 312_000, ("reading", "confluent")),
    ("decode in memory, decode_csv_batch (TF)", 16_000, ("reading", "decode_csv_batch")),
    ("decode in memory, decode_batch (NumPy)", None, ("reading", "decode_batch")),
    ("read + decode, kafka-python", 11_700, None),
    ("read + decode, confluent-kafka -> ours: open_batches", 14_100, ("reading", "ours")),
    ("read + decode, ours and commit a batch", None, ("reading", "ours-commit")),
    ("read + decode, the talk's per-message decode", None, ("reading", "talk")),
    ("streaming end to end, rows/s", 6_900, ("pipeline", "streaming")),
]


#: The predictor's figures recorded before adaptive batches and the overlapped pipeline, beside today's: label ->
#: (the older figure, when and at what load it was recorded), and where today's comes from (benchmark, a function
#: of its JSON).
PREDICTOR_BEFORE = [
    (
        "1 consumer.predict, commit → table row p50 / p99 at 200 rows/s (ms)",
        "119 / 212 (batches of 32; 2026-12-02, load 0.9 → 3.8)",
        ("prediction_latency", lambda d: _p50_p99(d, "1 consumer.predict: commit -> table row @ 200 rows/s")),
    ),
    (
        "1 consumer.predict, commit → table row p50 / p99 at 1,000 rows/s (ms)",
        "61 / 174 (batches of 32; 2026-12-02, load 0.9 → 3.8)",
        ("prediction_latency", lambda d: _p50_p99(d, "1 consumer.predict: commit -> table row @ 1000 rows/s")),
    ),
    (
        "1 consumer.predict on a 10,000 backlog (records/s)",
        "3,038 (2026-12-02, load 3.8 → 2.4)",
        ("spark", lambda d: f"{d['scorers']['predict']['rate']['median']:,.0f}"),
    ),
    (
        "consumer.predict on a 20,000 backlog ÷ predict_on_batch alone (RATIO)",
        "0.20 (3,730 records/s; 2026-12-04); 0.40 with batches that adapt and scoring overlapped (18,101 vs the "
        "model alone's 45,288; 2026-12-06, load 1.1 → 1.0), before the collector's full passes were kept off the "
        "model",
        ("predict_throughput", lambda d: f"{d['headline']['ratio']:.3f}" if "headline" in d else "-"),
    ),
    (
        "commit → Kafka p99 at 1,000 rows/s, exactly once, each 10 s run (ms)",
        "831 / 431 / 435, a stall of about 430 rows in each (2026-12-05, load 2.7–3.2)",
        ("stall", lambda d: " / ".join(f"{run['total']['p99']:.0f}" for run in d["runs"])),
    ),
    (
        "train --follow: commit → a published model learned the row, p50 / p99 at 200 rows/s (s)",
        "15.7 / 40.7: versions at checkpoints only, measured beside the after in the same run",
        ("freshness", lambda d: _freshness(d, "--publish-every-seconds 5")),
    ),
]


def _freshness(doc: dict, mode: str) -> str:
    latency = doc["modes"][mode]["latency_ms"]
    return f"{latency['p50'] / 1000:.1f} / {latency['p99'] / 1000:.1f}"


def _p50_p99(doc: dict, key: str) -> str:
    stats = doc["latency_ms"][key]
    return f"{stats['p50']['median']:.0f} / {stats['p99']['median']:.0f}"


def predictor_before_after(documents: dict[str, dict]) -> list[str]:
    """The predictor's recorded older figures beside the medians recorded below."""
    rows = []
    for label, before, (name, after_of) in PREDICTOR_BEFORE:
        doc = documents.get(name)
        after = after_of(doc) if doc else "not measured"
        load = f"load {doc['load_average']['start'][0]} → {doc['load_average']['end'][0]}" if doc else "-"
        rows.append([label, before, after, f"{doc['measured_at'][:10]}, {load}" if doc else "-"])
    return [
        "## Answers and freshness: before and after",
        "",
        "Before: the predictor recorded with batches that waited to fill (and, for the latency, the benchmark's "
        "batches of 32); capture with Connect's internal consumers at `fetch.max.wait.ms` 500 (its default); "
        "learning with versions at checkpoints only. After: the figures recorded below, with batches that adapt to "
        "the stream and scoring overlapped with reading, Connect's internal consumers at `fetch.max.wait.ms` 20 "
        "([the stall](#stall)), and a model version published every 5 s.",
        "",
        *markdown_table(["measure", "before", "after", "after: recorded, load (1 min)"], rows),
        "",
    ]


def _fmt(stats: dict, digits: int = 0) -> str:
    return f"{stats['median']:,.{digits}f} ({stats['min']:,.{digits}f}–{stats['max']:,.{digits}f})"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table.

    >>> markdown_table(["scorer", "records/s"], [["spark", "1,432"]])
    ['| scorer | records/s |', '|---|---|', '| spark | 1,432 |']
    """
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header), *(f"| {' | '.join(row)} |" for row in rows)]


def _latency_table(doc: dict) -> list[str]:
    return markdown_table(
        ["settings @ rate", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        [[key, *_percentiles(stats)] for key, stats in doc["latency_ms"].items()],
    ) + ["", "Cells: median of the repetitions (min–max across them)."]


def _percentiles(stats: dict) -> list[str]:
    return [_fmt(stats[p], 1) for p in ("p50", "p95", "p99", "max")]


def _loader_table(doc: dict) -> list[str]:
    return markdown_table(
        ["method", "rows/s: median (min–max)"],
        [
            ["ours: binary COPY, one transaction", _fmt(doc["ours_rows_per_s"])],
            ["ours without the `one_lsn_per_row` trigger", _fmt(doc["ours_without_trigger_rows_per_s"])],
            ["upstream: one INSERT a row, `psql -f`", _fmt(doc["upstream_rows_per_s"])],
        ],
    ) + ["", f"{doc['rows']:,} rows from {doc['source']}; ratio **{doc['ratio']}×**."]


def _predict_scaling_table(doc: dict) -> list[str]:
    return markdown_table(
        ["processes", "wall s", "scoring records/s", "CPU s, all processes"],
        [
            [processes, _fmt(f["wall_s"], 1), _fmt(f["records_per_s"]), _fmt(f["cpu_s_total"], 1)]
            for processes, f in doc["median"].items()
        ],
    ) + [
        "",
        f"{doc['records']:,} records on {doc['partitions']} partitions, batches of {doc['batch_size']}, "
        f"{doc['reps']} interleaved repetitions; one prediction a record checked by a read_committed reader.",
    ]


def _spark_table(doc: dict) -> list[str]:
    return markdown_table(
        ["scorer", "records/s", "s", "start-up s", "CPU s (start to end)", "CPU s / 1k records", "records each"],
        [
            [
                scorer,
                _fmt(f["rate"]),
                _fmt(f["wall_s"], 1),
                _fmt(f["startup_s"], 1),
                _fmt(f["cpu_s"], 1),
                f"{f['cpu_s']['median'] / doc['records'] * 1000:.2f}",
                " + ".join(f"{each['median']:,.0f}" for each in f.get("records_each", [])) or "-",
            ]
            for scorer, f in doc["scorers"].items()
        ],
    ) + [
        "",
        f"{doc['records']:,} records on {doc['partitions']} partitions after a warm-up, every scorer ready "
        f"before the first; {doc['reps']} repetitions; cells: median (min–max).",
    ]


def _stall_table(doc: dict) -> list[str]:
    rows = []
    for run in doc["runs"]:
        causes = ", ".join(f"{cause} {count}" for cause, count in run["by_cause"].items() if count)
        rows.append([
            f"{run['rate']:,}", f"{run['load_1m']:.1f}",
            *(f"{run[stage]['p50']:.0f} / {run[stage]['p99']:.0f}" for stage in ("total", "capture", "delivery")),
            f"{run['episodes']} ({run['stalled_rows']} rows)", causes or "-",
        ])  # fmt: skip
    return markdown_table(
        ["rows/s", "load (1 min)", "commit → Kafka p50 / p99 ms", "capture", "delivery", "stall episodes",
         "JVM paused during one"],
        rows,
    ) + [
        "",
        f"One row a repetition, after {doc.get('warm_up_s', 0):g} s of rows not measured. Capture: commit → the "
        f"record's CreateTime (Connect's producer); delivery: CreateTime → a read_committed reader. A stall: a row "
        f"over {doc['stall_ms']:g} ms.",
        *STALL_FOUND,
        *_stall_spent(doc),
    ]  # fmt: skip


#: What the stall was, measured with this benchmark before the fix (not in the JSON: recorded runs are after it).
STALL_FOUND = [
    "",
    "**The stall, found.** With Connect's consumers at `fetch.max.wait.ms` 500 (their default), 6 of 28 runs "
    "(2026-12-06, `python -m bench.stall_bench --no-record`, load 0.8–2.4) had an episode of about 430 rows, worst "
    "523–527 ms. In the 5 sampled with the running counts, the count of changes Debezium read from the WAL stream "
    "stood still at most 21–38 ms while the task's poll count stood still 500–522 ms; Connect's producer spent 4–8 "
    "ms of the episode in `commitTransaction`, and the broker's EndTxn requests in it took under 1 ms together. A "
    "flight recording of Connect (`jcmd <pid> JFR.start settings=profile`) showed the task thread parked 501 ms in "
    "`OffsetStorageReaderImpl.offsets` ← `BaseSourceTask.getPreviousOffsets` ← `PostgresConnectorTask.performCommit` "
    "← `BaseSourceTask.poll`: after each transaction Debezium reads its offsets back to confirm the WAL position, "
    "the read waits for a consumer of the offsets topic to reach its end, and a fetch that finds nothing new waits "
    "`fetch.max.wait.ms` at the broker. With 20 ms for the worker's internal consumers only, 1 of 8 runs still had "
    "one (533 ms still): the connector's own offsets reader takes the `consumer.` setting. With both "
    "(`stack/connect.py`), none in the 14 runs since (8 unrecorded, 6 above). Cost, idle, 20 s each right after a "
    "start: the broker 5.8 → 7.1 % of a core, Connect 11.3 → 11.6 %.",
]


def _stall_spent(doc: dict) -> list[str]:
    rows = episode_rows(doc["runs"])
    if not rows:
        return []
    return [
        "",
        "What the broker and Connect's producer spent in each stall's window (its first stalled commit to its last "
        "arrival, a 20 ms sample either side), beside an average second of the same run: requests of each kind the "
        "broker completed · the milliseconds they took there (`RequestMetrics` `TotalTimeMs`, and for EndTxn its "
        "stages), and the milliseconds Connect's busiest producer spent in `commitTransaction` "
        "(`txn-commit-time-ns-total`), sampled over JMX every 20 ms (`bench/JmxSampler.java`).",
        "",
        *markdown_table(EPISODE_HEADER, rows),
    ]


def _rep_loads(doc: dict) -> str:
    """Each repetition's 1-minute load average at its start and end: the machine is shared.

    >>> _rep_loads({"runs": [{"load": {"start": [1.2, 1, 1], "end": [2.5, 1, 1]}}]})
    'Load average (1 min) of each repetition, start → end: 1.2 → 2.5.'
    """
    loads = ", ".join(f"{run['load']['start'][0]} → {run['load']['end'][0]}" for run in doc["runs"])
    return f"Load average (1 min) of each repetition, start → end: {loads}."


#: Where the predictor's time went, measured by timing each stage of one run on this benchmark's backlog (not in
#: the JSON: a profile, not a figure the benchmark records).
PREDICT_THROUGHPUT_WHY = [
    "Where the time went (2026-12-06, timers around each stage of one `consumer.predict --batch-size 2048` on "
    "this backlog): the scoring thread was the bottleneck, busy the whole interval with the model call "
    "(0.85–1.1 s for 20,000 records, half the model alone's speed) and then the records (0.23 s of Python), "
    "while the main thread waited 0.3–0.4 s for it. Python's collector made 7 full passes a run (start-up "
    "included), 600 ms in all: with TensorFlow and Keras loaded, each walks about 400,000 objects (140 ms for "
    "one `gc.collect()`). Two changes took RATIO from 0.40 to 0.53: the objects loaded with the model are "
    "frozen out of the collector's passes (`consumer.store.source.settle`; 18–20k → 23–25k records/s alone), "
    "and the scoring thread runs only the model call, the main thread turning its answers into records (about "
    "3 % more). The rest is the machine: the model alone uses both cores (1.5 CPU seconds a second), so the "
    "decode (13 µs a record), the records, the produce and the broker take cores from it.",
]


def _predict_throughput_table(doc: dict) -> list[str]:
    rows = [
        [f"model alone: `predict_on_batch`, batches of {size}", _fmt(f["records_per_s"]), "-", "-", "-", "-"]
        for size, f in doc["model_alone"].items()
    ]
    rows += [
        [
            f"`consumer.predict --batch-size {size}`",
            _fmt(f["records_per_s"]),
            _fmt(f["records_per_s_timed_batches"]),
            f"{_fmt(f['wall_records_per_s'])} in {f['wall_s']['median']:.1f} s",
            f"{f['transactions']['median']:.0f}",
            f"{doc['ratio'][size]:.2f}",
        ]
        for size, f in doc["predictor"].items()
    ]
    headline = doc["headline"]
    return markdown_table(
        ["scorer", "records/s", "records/s, timed batches", "records/s with start-up", "transactions", "RATIO"], rows
    ) + [
        "",
        f"RATIO **{headline['ratio']:.2f}**: `consumer.predict --batch-size {headline['batch_size']}` catching up on "
        f"{doc['records']:,} records ({doc['partitions']} partitions) ÷ the model alone at its best "
        f"(batches of {doc['model_alone_best_batch']}), measured in the same run; {doc['reps']} repetitions, "
        "cells: median (min–max).",
        "",
        "records/s: the predictor's own summary line (every record ÷ the time from handing over its first batch to "
        "handing over its last: start-up and the last batch's scoring excluded); timed batches: the records of the "
        "batches inside that interval only (all but the last); with start-up: every record ÷ the time from starting "
        "the process to its last transaction's commit. The model alone: a process of its own, the same images "
        "decoded by the consumer's `decode_batch` (float32, /255), the clock around `predict_on_batch` only, after "
        "a warm-up call a size. Command: `python -m bench.predict_throughput_bench` (`--records`, `--batch-sizes`, "
        "`--model-batch-sizes`, `--reps`).",
        "",
        *PREDICT_THROUGHPUT_WHY,
        "",
        _rep_loads(doc),
    ]


def _fetch_wait_table(doc: dict) -> list[str]:
    rows = [
        [
            name,
            *(_fmt(f[k], 1) for k in ("p50", "p95", "p99", "max")),
            f"{f['from_call_p50']['median']:.1f} / {f['from_call_p99']['median']:.1f}",
            str(doc["before_commit"][name]),
        ]
        for name, f in doc["latency_ms"].items()
    ]
    answer = "yes" if doc["waits_for_fetch_wait_max_ms"] else "no"
    rate = doc["transactions_per_s"]["median"]
    return markdown_table(
        [
            "read_committed consumer",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "from the call: p50 / p99 ms",
            "before the commit returned",
        ],
        rows,
    ) + [
        "",
        f"Does a read_committed fetch wait for `fetch.wait.max.ms`? **{answer}**: p50 at the longest setting less "
        f"p50 at the shortest = {doc['p50_difference_ms']:.1f} ms (waiting it out would add about half the wait). "
        f"One record a transaction, {rate:.0f} transactions/s reached (asked {doc['rate']:g}), "
        f"{doc['seconds']:g} s, {doc['reps']} repetitions; cells: median (min–max).",
        "",
        "Latency: from just after `commit_transaction` returned to the read_committed consumer's `poll` handing the "
        "record over, both `time.monotonic()` of one process; from the call: from just before `commit_transaction` "
        "was called (an upper bound of the same). Before the commit returned: records fetched before the producer "
        "heard its commit succeed (negative latencies; all repetitions). Command: `python -m bench.fetch_wait_bench` "
        "(`--rate`, `--seconds`, `--waits`, `--reps`).",
        "",
        _rep_loads(doc),
    ]


def _delivery_table(doc: dict) -> list[str]:
    ratio = doc["exactly_once_over_at_least_once"]
    return markdown_table(
        ["delivery (worker)", "p50 ms", "p95 ms", "p99 ms", "max ms", "COPY rows/s"],
        [
            [f"{mode} ({doc['workers'][mode]})", *_percentiles(stats), _fmt(doc["copy_rows_per_s"][mode])]
            for mode, stats in doc["latency_ms"].items()
        ],
    ) + [
        "",
        f"The same rows through both workers at once: {doc['rate']:,} rows/s for {doc['seconds_per_rep']:g} s, "
        f"then one COPY of {doc['copy_rows']:,} rows. Exactly-once / at-least-once: p50 **{ratio['p50']:.2f}×**, "
        f"p99 **{ratio['p99']:.2f}×**, COPY rows/s **{ratio['rows_per_s']:.2f}×**.",
    ]


def _pipeline_table(doc: dict) -> list[str]:
    return markdown_table(
        ["case", "committed → decoded, rows/s: median (min–max)", "committed → on the topic"],
        [[case, _fmt(stats), _fmt(doc["on_topic_rows_per_s"][case])] for case, stats in doc["rows_per_s"].items()],
    ) + ["", f"{doc['rows']:,} rows of {doc['source']} committed → decoded by our consumer (open_batches)."]


def _reading_table(doc: dict) -> list[str]:
    rows = [
        [
            reader,
            _fmt(stats["records_per_s"]),
            f"{stats['cpu_seconds_per_1k']['median']:.4f}",
            f"{stats['records_per_cpu_s']['median']:,.0f}",
            f"{stats['cores_busy']['median']:.2f}",
        ]
        for reader, stats in doc["readers"].items()
    ]
    rows += [[reader, f"skipped: {why}", "", "", ""] for reader, why in doc["skipped"].items()]
    sizes = doc["tf_decode_batch_sizes"]
    return markdown_table(
        ["reader", "records/s: median (min–max)", "CPU s / 1k records", "records / CPU s", "cores busy"], rows
    ) + [
        "",
        f"{doc['records']:,} records of {doc['source']}, batches of {doc['batch']}; every reader a fresh process "
        "pinned to one CPU. Ratios of records/s: "
        + ", ".join(f"{k} **{v}×**" for k, v in doc["ratios"].items())
        + "; of records per CPU second: "
        + ", ".join(f"{k} **{v}×**" for k, v in doc.get("ratios_per_cpu_s", {}).items())
        + f". `decode_csv_batch` called with batch sizes 1..{sizes['sizes']}: {sizes['new_traces']} new traces, "
        f"{sizes['ms_per_call']['median']:.1f} ms a call. Targets met: {doc['targets_met']}.",
    ]


def _training_table(doc: dict) -> list[str]:
    return markdown_table(
        ["data", "train/test rows", "epochs", "s/epoch", "test accuracy"],
        [
            [
                data,
                f"{f['train_rows']:,}/{f['test_rows']:,}",
                str(f["epochs"]),
                _fmt(f["seconds_per_epoch"], 1),
                _fmt(f["test_accuracy"], 4),
            ]
            for data, f in doc.items()
            if isinstance(f, dict) and "seconds_per_epoch" in f
        ],
    )


def _training_stream_table(doc: dict) -> list[str]:
    rows = []
    if "accuracy" in doc:
        a = doc["accuracy"]
        rows.append(
            [
                f"{a['epochs']} epochs over 1x",
                f"{doc['train_rows']:,}",
                f"{a['seconds']:.0f}",
                f"{a['peak_rss_mib']:,.0f}",
                f"{a['test_accuracy']:.4f} ({a['test_records']:,} records)",
            ]
        )
    rows += [
        [
            f"1 epoch over {copies.lstrip('x')}x",
            f"{m['records']:,}",
            f"{m['seconds']:.0f}",
            f"{m['peak_rss_mib']:,.0f}",
            "–",
        ]
        for copies, m in doc["memory"].items()
    ]
    note = f"{doc['source']} through `consumer.train` (one-shot), topics of {doc['partitions']} partitions."
    if "memory_ratio" in doc:
        note += f" Peak memory **{doc['memory_ratio']}×** for {doc['records_ratio']}× the records."
    return markdown_table(["run", "train records", "wall s", "peak RSS MiB", "test accuracy"], rows) + ["", note]


def _freshness_table(doc: dict) -> list[str]:
    return markdown_table(
        ["train --follow", "p50 s", "p95 s", "p99 s", "max s", "versions: checkpoint + model"],
        [
            [
                mode,
                *(f"{f['latency_ms'][k] / 1000:.1f}" for k in ("p50", "p95", "p99", "max")),
                f"{f['versions']['checkpoint']} + {f['versions']['model']}",
            ]
            for mode, f in doc["modes"].items()
        ],
    ) + [
        "",
        f"{doc['rows']:,} rows at {doc['rate']:,} rows/s into the benchmark's table, both followers at once on the "
        f"same rows (checkpoints every {doc['checkpoint_every_seconds']:g} s or 5,000 records). A row's figure: its "
        "COMMIT to the `published_at` of the first version whose `vNNNN.json` offsets cover the row's offset. "
        f"With checkpoints only, a version comes with every 5,000 records ({5000 / doc['rate']:.0f} s at "
        f"{doc['rate']:,} rows/s) or {doc['checkpoint_every_seconds']:g} s, and the last rows wait for the checkpoint "
        f"a quiet follower writes after {doc['checkpoint_every_seconds'] / 2:g} s; between checkpoints the other "
        "publishes the model alone. Flags: `--rate`, `--seconds`, `--modes`, `--checkpoint-every-seconds`.",
    ]


def _soak_table(doc: dict) -> list[str]:
    return [
        f"{doc['rows']:,} rows at {doc['rate']:g} rows/s in {doc['seconds']:.0f} s: delivered "
        f"{doc['delivered']:,} (duplicates {doc['duplicates']}), consumed {doc['consumed']:,}; "
        f"passed: {doc['passed']}.",
        "",
    ] + markdown_table(
        ["process", "max RSS MiB", "growth first→last quarter", "bound MiB", "within"],
        [
            [
                process,
                f"{m['max_mib']:.0f}",
                f"{m['growth_percent']:+.1f} %",
                str(m["bound_mib"]),
                "yes" if m["within_bound"] else "no",
            ]
            for process, m in doc["memory"].items()
        ],
    )


#: The body of each benchmark's section, by result file; a result without one shows its header only.
BODIES = {
    "loader": _loader_table,
    "latency": _latency_table,
    "prediction_latency": _latency_table,
    "engine_latency": _latency_table,
    "predict_scaling": _predict_scaling_table,
    "spark": _spark_table,
    "stall": _stall_table,
    "delivery": _delivery_table,
    "fetch_wait": _fetch_wait_table,
    "predict_throughput": _predict_throughput_table,
    "pipeline": _pipeline_table,
    "reading": _reading_table,
    "training": _training_table,
    "training_stream": _training_stream_table,
    "freshness": _freshness_table,
    "soak": _soak_table,
}


def section(name: str, doc: dict) -> list[str]:
    """The Markdown lines of one benchmark's section: command, target, its table, the load it ran under."""
    lines = [
        f"## {name}",
        "",
        f"Command: `{doc['command']}` — measured {doc['measured_at']}",
        "",
        f"Target: {TARGETS.get(name, '-')}",
        "",
    ]
    if name in BODIES:
        lines += BODIES[name](doc)
    if "load_average" in doc:
        load = doc["load_average"]
        lines += ["", f"Load average (1, 5, 15 min) at the start {load['start']}, at the end {load['end']} (2 cores)."]
    return lines + [""]


def before_after(documents: dict[str, dict]) -> list[str]:
    """The reading path's recorded older figures beside this machine's recorded medians."""
    lines = [
        "## Reading path: before and after",
        "",
        "Before: the figures recorded with kafka-python as the reader and the TF decode. After: the medians",
        "recorded below by `bench.reading_bench` and `bench.pipeline_bench` (records/s unless marked).",
        "",
        "Under load the wall rates fall with the share of a core the reader gets; records per CPU second",
        "(`getrusage`, all threads) are what one core does when it is the reader's alone.",
        "",
    ]
    rows = []
    for label, before, source in BEFORE_AFTER:
        after, per_cpu = "retired", "-"
        if source is not None:
            name, key = source
            doc = documents.get(name)
            if doc is None:
                after = "not measured"
            elif name == "reading":
                stats = doc["readers"].get(key)
                after = f"{stats['records_per_s']['median']:,.0f}" if stats else doc["skipped"].get(key, "-")
                per_cpu = f"{stats['records_per_cpu_s']['median']:,.0f}" if stats else "-"
            else:
                after = f"{doc['rows_per_s'][key]['median']:,.0f}"
        rows.append([label, "-" if before is None else f"{before:,}", after, per_cpu])
    lines += markdown_table(["measure", "before", "after: records/s", "after: records per CPU second"], rows)
    loads = {name: documents[name]["load_average"]["end"][0] for name in ("reading", "pipeline") if name in documents}
    lines += [
        "",
        "Load average (1 min) at the end of the after runs: " + ", ".join(f"{k} {v}" for k, v in loads.items()),
    ]
    return lines + [""]


def main() -> int:
    documents = {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}
    if not documents:
        print("error: no results in bench/results; run make bench first", file=sys.stderr)
        return 1
    machine = next(iter(documents.values()))["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench.report` from `bench/results/*.json`; each script compares our method",
        "with the upstream example's in the same run. Re-run with `make bench` (against `python -m stack up`).",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
        "",
    ]
    if "reading" in documents or "pipeline" in documents:
        lines += before_after(documents)
    lines += predictor_before_after(documents)
    for name in [n for n in ORDER if n in documents] + [n for n in documents if n not in ORDER]:
        lines += section(name, documents[name])
    DOC.write_text("\n".join(lines))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

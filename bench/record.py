"""Shared by the benchmark scripts: their common flags and settings, medians with spread, a printed table, and
``record``, the one way a script ends: the figures with the command, the machine and its load average in
``bench/results/<name>.json``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from stack.config import StackConfig, add_flags, kafka_from_args, postgres_from_args
from stack.versions import pinned_versions

RESULTS = Path(__file__).resolve().parent / "results"

#: The load average when the script started (this module is imported first): the machine is shared, so a
#: figure is only read together with how busy the machine was meanwhile.
LOAD_AT_START = os.getloadavg()


def parser(module: str, doc: str, reps: int | None = 3, settings: bool = True) -> argparse.ArgumentParser:
    """The script's parser with the flags every benchmark has: ``--reps`` (unless None), ``--no-record`` and the
    PostgreSQL and Kafka flags of ``stack.config`` (they override the environment)."""
    result = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.splitlines()[0])
    if reps is not None:
        result.add_argument("--reps", type=int, default=reps, help=f"repetitions, the median is reported ({reps})")
    result.add_argument("--no-record", action="store_true", help="print only, do not write bench/results")
    if settings:
        add_flags(result, "postgres", "kafka")
    return result


def add_rate_flags(parser: argparse.ArgumentParser) -> None:
    """The latency benchmarks' ``--rates`` (rows/s, each measured in turn) and ``--seconds`` (insert time)."""
    parser.add_argument("--rates", type=int, nargs="+", default=[200, 1000], help="rows/s (200 1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="insert time per rate and repetition (10)")


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with ``command``, the command line as ``record`` writes it."""
    args = parser.parse_args(argv)
    args.command = " ".join([parser.prog, *(sys.argv[1:] if argv is None else argv)])
    return args


def settings(args: argparse.Namespace) -> StackConfig:
    """The stack's settings from the environment, with the script's PostgreSQL and Kafka flags applied."""
    cfg = StackConfig.from_env()
    return dataclasses.replace(cfg, postgres=postgres_from_args(args), kafka=kafka_from_args(args))


def machine() -> dict[str, str]:
    """What the figures were measured on: cores, memory, versions."""

    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"

    memory_kb = 0
    try:
        memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cores": str(os.cpu_count()),
        "memory_gib": f"{memory_kb / 2**20:.0f}",
        "python": platform.python_version(),
        "java": first_line(["java", "-version"]),
        "postgres": first_line(["psql", "--version"]),
        **{k.lower(): v for k, v in pinned_versions().items()},
    }


def percentiles(latencies_ms: np.ndarray) -> dict[str, float]:
    """p50, p95, p99 and the maximum of one run's latencies."""
    p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(latencies_ms.max())}


def summarise(values: list[float]) -> dict[str, float]:
    """Median, min and max of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def spread(stats: dict[str, float], digits: int = 0) -> list[str]:
    """Median, min and max as table cells."""
    return [f"{stats[k]:,.{digits}f}" for k in ("median", "min", "max")]


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for line in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).rjust(w) for cell, w in zip(line, widths, strict=True)))


def load_average() -> dict[str, list[float]]:
    """1-, 5- and 15-minute load averages at the start of the script and now."""
    return {"start": [round(x, 2) for x in LOAD_AT_START], "end": [round(x, 2) for x in os.getloadavg()]}


def record(args: argparse.Namespace, name: str, figures: dict, status: int = 0) -> int:
    """Print the load average and, unless ``--no-record``, write ``bench/results/<name>.json``: the command, when,
    the machine, the load average and ``figures``. Returns ``status``: a script ends with ``return record(...)``."""
    load = load_average()
    print(f"load average (1, 5, 15 min): {load['start']} at the start, {load['end']} at the end")
    if args.no_record:
        return status
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "command": args.command,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_average": load,
        **figures,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"recorded in {path}")
    return status

"""The running Connect worker's clients have the settings the stack's worker properties give them (read from the
configuration each client logs when it is made: a setting under the wrong prefix reaches no client)."""

from __future__ import annotations

import re

from stack import connect
from stack.contract import MNIST


def logged_consumer_settings(log: str) -> dict[str, dict[str, str]]:
    """``{client.id: {setting: value}}`` of the consumers the worker made, the latest of each client id."""
    found = {}
    for block in re.split(r"(?=ConsumerConfig values:)", log)[1:]:
        listing = block.split("\n\n", 1)[0]  # the settings end with a blank line
        settings = dict(re.findall(r"^\s+([a-z][a-z0-9.]+) = (.*)$", listing, flags=re.MULTILINE))
        if "client.id" in settings:
            found[settings["client.id"]] = settings
    return found


def test_the_readers_of_the_capture_offsets_fetch_without_waiting_half_a_second(native):
    # With exactly once, Debezium reads its offsets back after each transaction and the task waits until a
    # consumer reached the offsets topic's end; at fetch.max.wait.ms 500 that wait stalled the capture for
    # about half a second every few thousand rows (bench.stall_bench).
    consumers = logged_consumer_settings(connect.log_file(native.config).read_text(errors="replace"))
    connector = MNIST.connector
    readers = {
        name: s
        for name, s in consumers.items()
        if name.endswith("-offsets") or name == f"connector-consumer-{connector}"
    }

    assert {f"connector-consumer-{connector}"} < readers.keys(), sorted(consumers)
    assert {name: s["fetch.max.wait.ms"] for name, s in readers.items()} == dict.fromkeys(readers, "20")
    assert all(s["isolation.level"] == "read_committed" for s in readers.values())

"""The model keeps learning from the stream, observed from outside.

* ``consumer.evaluate --follow`` on a model store's ``latest.keras`` switches to a version published while it
  runs, between batches, and says which version scored each line.
* The drift demonstration: the sample's digits then the same digits inverted on a topic of their own, learned by
  ``consumer.train --follow``: the window accuracy falls after the switch, a drift line is printed, it is back
  above 0.80 within 2,500 records, while the frozen model (the learner at the switch) stays below 0.30 on the
  inverted digits.
"""

from __future__ import annotations

import re
import threading
import time

from probes.deadline import poll
from tests.integration.support.backend import stop
from tests.integration.support.digits import digits_topic, evaluate_following

LIVE_LINE = re.compile(
    r"records +(\d+)  batch accuracy [01]\.\d{3}  running accuracy [01]\.\d{4}  loss \S+  model (v\d+)$"
)


def scored(lines: list[str]) -> list[tuple[int, str]]:
    """``(records so far, version)`` of every live line."""
    return [(int(match.group(1)), match.group(2)) for line in lines if (match := LIVE_LINE.match(line))]


def test_evaluate_follows_a_new_model_version_between_batches(pipeline, tmp_path):
    from consumer.cli import quiet_tensorflow

    quiet_tensorflow()
    from consumer.kafka.client import KafkaClient
    from consumer.kafka.writer import write_records
    from consumer.learning.models import build_model
    from consumer.records.codec import encode_records
    from consumer.store.versions import ModelStore

    store = ModelStore(tmp_path / "store")
    assert store.publish(build_model(seed=1)) == 1
    topic, images, labels = digits_topic(pipeline, "versions", 200)
    evaluate = evaluate_following(pipeline, topic, store.latest_model, 20)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in evaluate.stdout), daemon=True)
    reader.start()
    try:
        assert poll(lambda: (200, "v0001") in scored(lines), timeout=120), lines
        assert store.publish(build_model(seed=2)) == 2  # while evaluate waits for records
        write_records(KafkaClient.of(pipeline.bootstrap), topic, encode_records(images[200:400], labels[200:400]))
        assert poll(lambda: scored(lines)[-1][0] == 400, timeout=60), lines
    finally:
        _, errors = stop(evaluate, stdout_read=True)
        reader.join(timeout=10)
    assert evaluate.returncode == 0, errors

    assert lines[0].startswith(f"evaluating {store.latest_model} version v0001 on {topic}")
    versions = scored(lines)
    assert {version for records, version in versions if records <= 200} == {"v0001"}
    assert {version for records, version in versions if records > 200} == {"v0002"}, "the next batch after v2"
    switch = lines.index("model v0002 loaded (was v0001)")  # said between the two versions' lines
    assert scored(lines[:switch])[-1] == (200, "v0001") and scored(lines[switch:])[0][1] == "v0002"
    assert lines[-1].startswith("evaluated 400 records (0 malformed skipped)")


def test_drift_demo_drops_says_so_recovers_while_the_frozen_model_stays_low(pipeline, tmp_path):
    demo = pipeline.run(
        "consumer.drift_demo",
        "--topic", f"drift-demo-{time.time_ns()}",
        "--work-dir", str(tmp_path / "work"),
        "--run-dir", str(tmp_path / "runs"),
        timeout=600,
    )  # fmt: skip
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output[-3000:]
    summary = re.search(
        r"drift demo: window accuracy ([0-9.]+) before the switch at record 4,000, ([0-9.]+) at its lowest "
        r"\(record ([0-9,]+)\), back above 0\.80 at record ([0-9,]+) \(([0-9,]+) records after the switch\); "
        r"the frozen model v0001 \(the learner at the switch\) scores ([0-9.]+) on the inverted stream and "
        r"([0-9.]+) on the inverted test digits; the learner's v(\d{4}) scores ([0-9.]+) on the inverted test "
        r"digits and ([0-9.]+) on the plain ones",
        demo.stdout,
    )
    assert summary, output[-3000:]
    before, lowest = float(summary.group(1)), float(summary.group(2))
    to_recover = int(summary.group(5).replace(",", ""))
    frozen_stream, frozen_test = float(summary.group(6)), float(summary.group(7))
    learner_inverted = float(summary.group(9))
    print(f"\n{summary.group(0)}")  # the figures, for the log (pytest -s)

    assert before >= 0.85, "the learner knew the plain digits before the switch"
    assert lowest <= before - 0.3, "the window accuracy fell after the switch"
    assert re.search(r"^drift: window accuracy 0\.\d\d is 0\.\d\d below its best 0\.\d\d", demo.stderr, re.M), output
    assert re.search(r"^recovered: window accuracy 0\.\d\d is back above", demo.stderr, re.M), output
    assert to_recover <= 2500, "back above 0.80 within 2,500 records of the switch"
    assert frozen_stream < 0.3 and frozen_test < 0.3, "the model that stopped learning stays low"
    assert learner_inverted >= 0.8
    assert (tmp_path / "runs" / "learner").is_dir() and (tmp_path / "runs" / "frozen").is_dir()

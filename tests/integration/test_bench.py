"""Each benchmark script runs in a tiny configuration, so none rots. Figures are printed, never asserted:
speed goals live in the benchmarks, not in timed tests. No benchmark touches the demo's data: the row counts of
``mnist_train``/``mnist_test`` and the end offsets of their topics are the same before and after each one."""

from __future__ import annotations

import pytest

from tests.integration.support.demo_data import demo_data


@pytest.mark.parametrize(
    "script, args, expected",
    [
        ("bench.loader_bench", ["--limit", "50", "--reps", "1"], ["ours: binary COPY", "upstream: INSERT a row"]),
        ("bench.latency_bench", ["--rates", "100", "--seconds", "2", "--reps", "1"], ["upstream settings", "p99"]),
        ("bench.reading_bench", ["--records", "300", "--reps", "1"], ["ours / talk", "new traces"]),
        ("bench.pipeline_bench", ["--limit", "300", "--reps", "1"], ["streaming", "snapshot"]),
        (
            "bench.prediction_latency_bench",
            ["--scorers", "predict", "--rates", "100", "--seconds", "2", "--reps", "1"],
            ["1 consumer.predict", "commit -> prediction", "commit -> table row"],
        ),
        (
            "bench.predict_throughput_bench",
            ["--records", "600", "--batch-sizes", "256", "--model-batch-sizes", "256,1024", "--reps", "1"],
            ["model alone, predict_on_batch(1024)", "consumer.predict --batch-size 256", "RATIO (headline)"],
        ),
        (
            "bench.stall_bench",
            ["--rates", "100", "--seconds", "2", "--reps", "1"],
            ["capture", "stall episodes", "Connect in commitTransaction ms", "EndTxn n · ms"],
        ),
        ("bench.fetch_wait_bench", ["--seconds", "1", "--reps", "1"], ["fetch.wait.max.ms=500", "p99", "wait for"]),
        ("bench.train_bench", ["--datasets", "sample", "--epochs", "1", "--reps", "1"], ["test accuracy"]),
        (
            "bench.train_stream_bench",
            ["--accuracy-epochs", "1", "--copies", "1", "2", "--limit", "300"],
            ["test accuracy", "memory: 1 epoch over 2x", "peak memory"],
        ),
        (
            "bench.freshness_bench",
            ["--rate", "50", "--seconds", "3", "--warm-up-rows", "10", "--checkpoint-every-seconds", "6"],
            ["checkpoints only (--publish-every-seconds 0)", "--publish-every-seconds 5", "p99"],
        ),
        ("bench.soak", ["--rows", "1000", "--rate", "500", "--every", "0.5"], ["consumed by the model 1000"]),
    ],
)
def test_bench_script_runs_in_a_tiny_configuration_and_leaves_the_demo_data_alone(pipeline, script, args, expected):
    if pipeline.backend != "native" and script in ("bench.soak",):
        pytest.skip("samples the memory of native processes")
    before = demo_data(pipeline)

    result = pipeline.run(script, *args, "--no-record", timeout=600)

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for text in expected:
        assert text in result.stdout, result.stdout
    assert demo_data(pipeline) == before

"""Each benchmark script runs in a tiny configuration, so none rots (figures are not asserted: no timing tests)."""

from __future__ import annotations


def test_loader_bench_compares_both_methods(pipeline):
    result = pipeline.run("bench.loader_bench", "--limit", "50", "--reps", "1", "--no-record", timeout=300)

    assert result.returncode == 0, result.stderr
    assert "ours: binary COPY, 1 transaction" in result.stdout
    assert "upstream: INSERT a row, psql -f" in result.stdout
    assert "ratio ours / upstream:" in result.stdout

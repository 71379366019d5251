"""Metrics: TensorBoard event files a reader sees while the run is still writing; off means no files."""

from pathlib import Path

from consumer.monitoring.tensorboard import Metrics, RateMeter, read_scalars, timestamped_run


def test_points_are_readable_before_close(tmp_path):
    metrics = Metrics(tmp_path / "run")
    metrics.scalar("evaluate/accuracy", 0.5, 32)
    metrics.scalar("evaluate/accuracy", 0.75, 64)
    metrics.flush()
    assert read_scalars(tmp_path / "run")["evaluate/accuracy"] == [(32, 0.5), (64, 0.75)]
    metrics.close()


def test_the_first_point_is_on_disk_without_an_explicit_flush(tmp_path):
    metrics = Metrics(tmp_path / "run")
    metrics.scalar("stream/lag", 12, 1)  # the first point flushes: a live run shows up at once
    assert read_scalars(tmp_path / "run")["stream/lag"] == [(1, 12.0)]
    metrics.close()


def test_close_writes_everything_and_non_finite_values_are_skipped(tmp_path):
    with Metrics(tmp_path / "run") as metrics:
        for step in range(1, 101):
            metrics.scalar("train/loss", 1 / step, step)
        metrics.scalar("train/loss", float("nan"), 101)
        metrics.scalar("train/loss", float("inf"), 102)
    points = read_scalars(tmp_path / "run")["train/loss"]
    assert len(points) == 100 and points[-1][0] == 100
    metrics.close()  # a second close does nothing


def test_none_is_off_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metrics = Metrics(None)
    metrics.scalar("evaluate/accuracy", 1.0, 1)
    metrics.close()
    assert not metrics.enabled and list(tmp_path.iterdir()) == []


def test_run_names_carry_the_command_and_time():
    assert timestamped_run("evaluate").parent == Path("runs")
    assert timestamped_run("evaluate").name.startswith("evaluate-")


def test_rate_counts_records_over_the_recent_window():
    meter = RateMeter(window_s=5.0)
    for second in range(20):
        meter.add(100 if second < 10 else 300, at=float(second))
    assert meter.rate == 300.0

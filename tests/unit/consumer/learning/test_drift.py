"""DriftMonitor: the windowed prequential accuracy, one drift line when it falls, one recovery line after."""

import pytest

from consumer.learning.drift import DriftMonitor


def feed(monitor, accuracy, records, batch=50):
    """Batches of ``batch`` records with ``accuracy`` right; the messages they produced."""
    messages = []
    for _ in range(records // batch):
        message = monitor.update(round(accuracy * batch), batch)
        if message:
            messages.append(message)
    return messages


def test_window_accuracy_covers_only_the_last_window_of_records():
    monitor = DriftMonitor(window=100, drop=0.2)
    feed(monitor, 1.0, 1000)
    feed(monitor, 0.5, 100)
    assert monitor.window_accuracy == pytest.approx(0.5)
    assert monitor.records == 1100


def test_steady_accuracy_says_nothing():
    monitor = DriftMonitor(window=200, drop=0.2)
    assert feed(monitor, 0.9, 5000) == []
    assert not monitor.drifted


def test_a_drop_below_the_best_window_is_said_once_with_the_figures():
    monitor = DriftMonitor(window=100, drop=0.2)
    feed(monitor, 0.94, 500)
    messages = feed(monitor, 0.3, 500)
    assert messages == ["drift: window accuracy 0.62 is 0.32 below its best 0.94 (last 100 records, at record 550)"]
    assert monitor.drifted and monitor.drifted_at == 550


def test_a_drop_smaller_than_drop_is_not_drift():
    monitor = DriftMonitor(window=100, drop=0.2)
    feed(monitor, 0.95, 500)
    assert feed(monitor, 0.8, 500) == []


def test_recovery_is_said_once_with_the_records_it_took():
    monitor = DriftMonitor(window=100, drop=0.2)
    feed(monitor, 0.9, 500)
    feed(monitor, 0.2, 300)
    messages = feed(monitor, 0.9, 500)
    assert len(messages) == 1
    assert messages[0].startswith("recovered: window accuracy 0.90 is back above 0.80 ")
    assert "350 records after the drift (lowest 0.20, at record 900)" in messages[0]
    assert [kind for kind, _, _ in monitor.events] == ["drift", "recovered"]
    assert not monitor.drifted


def test_an_explicit_recovery_threshold_wins():
    monitor = DriftMonitor(window=100, drop=0.2, recover=0.6)
    feed(monitor, 0.9, 500)
    feed(monitor, 0.1, 200)
    assert feed(monitor, 0.7, 200)[0].startswith("recovered: window accuracy 0.70 is back above 0.60")


def test_a_second_drift_after_recovery_is_said_again():
    monitor = DriftMonitor(window=100, drop=0.2)
    for _ in range(2):
        feed(monitor, 0.9, 300)
        feed(monitor, 0.1, 300)
    assert [kind for kind, _, _ in monitor.events] == ["drift", "recovered", "drift"]


def test_nothing_is_judged_before_the_window_is_full():
    monitor = DriftMonitor(window=500, drop=0.2)
    assert feed(monitor, 1.0, 100) == [] and feed(monitor, 0.0, 300) == []
    assert not monitor.full and not monitor.drifted


def test_empty_batches_change_nothing():
    monitor = DriftMonitor(window=10)
    assert monitor.update(0, 0) is None
    assert monitor.window_accuracy == 0.0 and monitor.records == 0


@pytest.mark.parametrize(
    "kwargs", [{"window": 0}, {"drop": 0}, {"drop": 1.5}, {"recover": -0.1}], ids=["window", "drop0", "drop>1", "rec"]
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        DriftMonitor(**kwargs)


@pytest.mark.parametrize("correct, count", [(5, 4), (-1, 4), (0, -1)])
def test_impossible_counts_are_refused(correct, count):
    with pytest.raises(ValueError):
        DriftMonitor().update(correct, count)

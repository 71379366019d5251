"""Training: seconds per epoch and accuracy of our CNN (consumer.learning.models) on the sample and on Fashion-MNIST.

The images come straight from the loader's sources (the Kafka read is measured by reading_bench and
pipeline_bench); each repetition builds the model with the same seed and fits the same shuffled arrays,
as ``python -m consumer.train`` does after reading its topic; accuracy is on the held-out test split.

    python -m bench.train_bench                          # sample and Fashion-MNIST, 10 epochs, 3 repetitions
    python -m bench.train_bench --datasets sample --epochs 1 --reps 1 --no-record
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bench.images import FASHION
from bench.record import parse, parser, print_table, record, summarise
from bench.tables import run
from consumer.cli import quiet_tensorflow
from consumer.learning.models import build_model
from loader.source import Split, load_idx_dir, load_sample


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.train_bench", __doc__, settings=False)
    flags.add_argument("--datasets", nargs="+", choices=["sample", "fashion"], default=["sample", "fashion"])
    flags.add_argument("--epochs", type=int, default=10)
    flags.add_argument("--batch-size", type=int, default=64)
    args = parse(flags, argv)
    quiet_tensorflow()
    rows, figures = [], {}
    for name in args.datasets:
        if name == "fashion" and not FASHION.is_dir():
            print("fashion: skipped, /usr/share/datasets/fashion-mnist missing (apt-get install dataset-fashion-mnist)")
            continue
        data = load_sample() if name == "sample" else load_idx_dir(FASHION)
        per_epoch, accuracy = fit_runs(data, args.epochs, args.batch_size, args.reps)
        figures[name] = {
            "train_rows": len(data["train"]),
            "test_rows": len(data["test"]),
            "epochs": args.epochs,
            "seconds_per_epoch": summarise(per_epoch),
            "test_accuracy": summarise(accuracy),
        }
        rows.append(
            [
                name,
                f"{len(data['train'])}/{len(data['test'])}",
                f"{summarise(per_epoch)['median']:.1f}",
                f"{min(per_epoch):.1f}-{max(per_epoch):.1f}",
                f"{summarise(accuracy)['median']:.4f}",
                f"{min(accuracy):.4f}-{max(accuracy):.4f}",
            ]
        )
    print_table(
        f"Training: {args.epochs} epochs, batch {args.batch_size}, {args.reps} repetitions",
        ["data", "train/test", "s/epoch", "spread", "test accuracy", "spread"],
        rows,
    )
    return record(args, "training", figures)


def fit_runs(data: dict[str, Split], epochs: int, batch_size: int, reps: int) -> tuple[list[float], list[float]]:
    """Seconds per epoch and test accuracy of ``reps`` fits of a fresh model on the same shuffled arrays."""
    x_train = data["train"].images.astype("float32") / 255.0  # flat (n, 784), as records decode
    y_train = data["train"].labels.astype("int32")
    x_test = data["test"].images.astype("float32") / 255.0
    y_test = data["test"].labels.astype("int32")
    order = np.random.default_rng(0).permutation(len(y_train))
    x_train, y_train = x_train[order], y_train[order]
    per_epoch, accuracy = [], []
    for _ in range(reps):
        model = build_model()
        started = time.perf_counter()
        model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, validation_split=0.1, verbose=0)
        per_epoch.append((time.perf_counter() - started) / epochs)
        accuracy.append(float(model.evaluate(x_test, y_test, verbose=0)[1]))
    return per_epoch, accuracy


if __name__ == "__main__":
    sys.exit(run(main))

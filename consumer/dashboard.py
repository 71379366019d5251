"""``python -m consumer.dashboard`` (``make dashboard``): TensorBoard over the run directories, on 127.0.0.1.

``consumer.train`` writes ``runs/train-<time>``, ``consumer.evaluate --run-dir`` writes ``runs/evaluate-<time>``;
the port is TENSORBOARD_PORT (default 6006). Exit codes: TensorBoard's, 2 for a port that is not one.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from consumer.monitoring.tensorboard import DEFAULT_RUNS, tensorboard_command
from stack.config import DEFAULTS, ConfigError, tensorboard_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumer.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", type=Path, default=DEFAULT_RUNS, help=f"run directories ({DEFAULT_RUNS})")
    parser.add_argument(
        "--port", type=int, help=f"port on 127.0.0.1 [env TENSORBOARD_PORT, default {DEFAULTS['TENSORBOARD_PORT']}]"
    )
    args = parser.parse_args(argv)
    try:
        port = args.port or tensorboard_port()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.logdir.mkdir(parents=True, exist_ok=True)
    command = tensorboard_command(args.logdir, port)
    print(f"TensorBoard on http://127.0.0.1:{port}/ over {args.logdir}/ (Ctrl-C to stop)", flush=True)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

"""``python -m stack up|add|status|down``: the native stack, without Docker.

Settings come from the environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, DEBEZIUM_PGPASSWORD,
KAFKA_BOOTSTRAP_SERVERS, KAFKA_CONTROLLER_PORT, CONNECT_URL, STACK_HOME, STACK_ENGINE, DEBEZIUM_SERVER_PORT); see
README.md. STACK_ENGINE=server captures with Debezium Server instead of the Kafka Connect connector.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from stack import runner
from stack.config import ENGINES, ConfigError, StackConfig
from stack.datasets import DatasetError, available, load
from stack.processes import StepError


def _say(line: str) -> None:
    print(line, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stack",
        description="Run PostgreSQL, Kafka and Kafka Connect with Debezium as local processes (no Docker). "
        "State lives in $STACK_HOME (default .stack/ at the repo root).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    assemble = commands.add_parser(
        "assemble", help="fetch and lay out the jars only (Maven Central), as make setup does"
    )
    assemble.add_argument(
        "--engine",
        choices=ENGINES,
        help="also the parts of this capture engine (server: Debezium Server's distribution) [env STACK_ENGINE, "
        "default connect]",
    )
    commands.add_parser(
        "up",
        help="assemble (again after a version or transform change, restarting what uses the jars), start every "
        "service, register the connector, wait RUNNING",
    )
    add = commands.add_parser(
        "add",
        help="set up a dataset on the running stack (its tables, topics, connector and predictions sink) and "
        "remember it, so up sets it up again",
    )
    add.add_argument(
        "dataset", metavar="NAME|PATH", help=f"a dataset in datasets/ ({', '.join(available())}) or a .toml's path"
    )
    commands.add_parser(
        "status",
        help="one line per component (and per added dataset's connector), then the rows each added dataset set "
        "aside; exit 0 only when all are healthy",
    )
    down = commands.add_parser("down", help="stop the services (data kept)")
    down.add_argument("--purge", action="store_true", help="also delete data, logs and pid files")
    return parser


def _status(cfg: StackConfig) -> int:
    """Print one line per component, then the rows each added dataset set aside; 0 only when all are healthy."""
    components = runner.status(cfg)
    for component in components:
        _say(f"{component.name:<10} {'ok  ' if component.ok else 'DOWN'} {component.detail}")
    for line in runner.set_aside(cfg):
        _say(line)
    return 0 if all(c.ok for c in components) else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = StackConfig.from_env()
        if args.command == "assemble":
            if args.engine:
                cfg = dataclasses.replace(cfg, engine=args.engine)
            did = runner.assemble_jars(cfg)
            _say(f"{'assembled' if did else 'already assembled'}: {runner.jar_dirs(cfg)}")
            return 0
        if args.command == "up":
            if not runner.up(cfg, _say):
                _say("stack already running: nothing changed (python -m stack status for details)")
            return 0
        if args.command == "add":
            runner.add(cfg, load(args.dataset), _say)
            return 0
        if args.command == "status":
            return _status(cfg)
        runner.down(cfg, _say, purge=args.purge)
        return 0
    except (StepError, ConfigError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

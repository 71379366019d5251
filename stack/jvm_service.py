"""One JVM of the stack (the Kafka broker, the Connect worker): where its files are, how it starts and stops.

Both run a main class on the assembled classpath with one properties file, log to ``$STACK_HOME/logs`` and
record their pid in ``$STACK_HOME/run``; only their properties and their readiness checks differ, and those
stay in ``stack.kafka`` and ``stack.connect``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stack.assembled import lib_dir
from stack.config import StackConfig
from stack.processes import StepError, read_pid, start_process, stop_process

#: What a JVM of the stack needs from our environment; everything else (PGPASSWORD above all) stays out of it.
JVM_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "JAVA_HOME", "JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS")


def jvm_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for a JVM: ``JVM_ENV`` from ours, plus ``extra``."""
    env = {name: os.environ[name] for name in JVM_ENV if name in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    return {**env, **(extra or {})}


def java() -> str:
    path = shutil.which("java")
    if path is None:
        raise StepError("java not found; install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    return path


def classpath(cfg: StackConfig) -> str:
    """Kafka and Connect share one classpath: every jar ``assemble`` put in lib/."""
    return f"{lib_dir(cfg)}/*"


@dataclass(frozen=True)
class JvmService:
    """A JVM started from ``main_class`` with ``$STACK_HOME/<name>/<config_name>``, logged to ``logs/<name>.log``,
    its pid in ``run/<name>.pid``."""

    name: str
    main_class: str
    config_name: str
    heap: str
    stop_timeout: float = 30.0

    def home(self, cfg: StackConfig) -> Path:
        """The service's own directory: its properties file (and Kafka's data)."""
        return cfg.home / self.name

    def config_file(self, cfg: StackConfig) -> Path:
        return self.home(cfg) / self.config_name

    def log_file(self, cfg: StackConfig) -> Path:
        return cfg.logs / f"{self.name}.log"

    def pid_file(self, cfg: StackConfig) -> Path:
        return cfg.run / f"{self.name}.pid"

    def marks(self, cfg: StackConfig) -> tuple[str, str]:
        """What our JVM's command line holds (see ``processes.read_pid``): its main class and this stack's
        properties file, so another STACK_HOME's service, or a stranger on a reused pid, is not ours."""
        return self.main_class, str(self.config_file(cfg))

    def write_config(self, cfg: StackConfig, lines: list[str]) -> Path:
        """Write the properties file anew: every start takes the addresses from the configuration of that moment."""
        path = self.config_file(cfg)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(["# Written by python -m stack on every start.", *lines, ""]))
        return path

    def start(self, cfg: StackConfig, env: Mapping[str, str]) -> int:
        """Start the JVM on the properties file already written, detached; return its pid."""
        argv = [java(), self.heap, "-cp", classpath(cfg), self.main_class, str(self.config_file(cfg))]
        return start_process(argv, self.log_file(cfg), self.pid_file(cfg), env=env)

    def start_argv(self, cfg: StackConfig, argv: list[str], env: Mapping[str, str], cwd: Path) -> int:
        """Start a JVM whose command line the caller lays out (Debezium Server: its own java, classpath, no
        config argument); ``argv`` must hold ``marks``, so ``running_pid`` and ``stop`` know it."""
        missing = [mark for mark in self.marks(cfg) if mark not in argv]
        if missing:
            raise ValueError(f"{self.name}: the command line lacks {missing}")
        return start_process(argv, self.log_file(cfg), self.pid_file(cfg), env=env, cwd=cwd)

    def running_pid(self, cfg: StackConfig) -> int | None:
        return read_pid(self.pid_file(cfg), self.marks(cfg))

    def stop(self, cfg: StackConfig) -> bool:
        """Stop our JVM (SIGTERM, SIGKILL after ``stop_timeout``); True when it was running."""
        return stop_process(self.pid_file(cfg), self.marks(cfg), timeout=self.stop_timeout)

"""A private PostgreSQL cluster under ``$STACK_HOME/postgres``, made with Debian's binaries."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import psycopg2
from psycopg2 import sql

from stack.config import CONNECTOR_ROLE, REPO_ROOT, StackConfig
from stack.processes import StepError, chown_for_service, run_as_service, wait_until

SQL_DIR = REPO_ROOT / "postgres"

# Appended to postgresql.conf once; stack.conf is rewritten on every start so a port change takes effect.
INCLUDE_LINE = "include_if_exists = 'stack.conf'\n"


def bin_dir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live: ``$PG_BINDIR``, Debian's newest version dir, or the PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if versions:
        return Path(versions[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise StepError("postgres: initdb not found; install Debian's postgresql package or set PG_BINDIR")


def data_dir(cfg: StackConfig) -> Path:
    return cfg.home / "postgres" / "data"


def log_file(cfg: StackConfig) -> Path:
    return cfg.logs / "postgres.log"


def _stack_conf(cfg: StackConfig) -> str:
    return "\n".join(
        [
            "# Written by python -m stack on every start; edit the runner, not this file.",
            f"listen_addresses = '{cfg.pg_host}'",
            f"port = {cfg.pg_port}",
            # TCP only: no socket files outside STACK_HOME, and no path-length limit for deep STACK_HOMEs.
            "unix_socket_directories = ''",
            # Debezium reads the WAL through a logical replication slot.
            "wal_level = logical",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            # Bulk COPY of 60k images writes ~50 MB of WAL; avoid checkpoints in the middle of it.
            "max_wal_size = 2GB",
            "shared_buffers = 256MB",
            "",
        ]
    )


def _hba(cfg: StackConfig) -> str:
    return "\n".join(
        [
            "# TYPE  DATABASE     USER  ADDRESS       METHOD",
            "host    all          all   127.0.0.1/32  scram-sha-256",
            f"host    replication  {CONNECTOR_ROLE}  127.0.0.1/32  scram-sha-256",
            "",
        ]
    )


def ensure_cluster(cfg: StackConfig) -> bool:
    """Create the cluster with initdb when it does not exist yet; True when it was created."""
    data = data_dir(cfg)
    if (data / "PG_VERSION").exists():
        return False
    root = data.parent
    root.mkdir(parents=True, exist_ok=True)
    chown_for_service(root)
    pwfile = root / "initdb.pw"
    pwfile.write_text(cfg.pg_password + "\n")
    chown_for_service(pwfile)
    try:
        result = run_as_service(
            [
                str(bin_dir() / "initdb"),
                "-D",
                str(data),
                "-U",
                cfg.pg_user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
            ]
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["unknown error"]
        raise StepError(f"postgres: initdb failed: {reason[0]}")
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(INCLUDE_LINE)
    return True


def start(cfg: StackConfig, timeout: float = 60.0) -> None:
    """Write the run-time settings and start the server with pg_ctl, waiting until it accepts logins."""
    data = data_dir(cfg)
    (data / "stack.conf").write_text(_stack_conf(cfg))
    (data / "pg_hba.conf").write_text(_hba(cfg))
    for name in ("stack.conf", "pg_hba.conf"):
        chown_for_service(data / name)
    log = log_file(cfg)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    chown_for_service(log)
    result = run_as_service(
        [str(bin_dir() / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(int(timeout)), "start"]
    )
    if result.returncode != 0 or not wait_until(lambda: accepts_logins(cfg), 15):
        raise StepError(f"postgres: did not start on {cfg.pg_host}:{cfg.pg_port}; see {log}")


def is_running(cfg: StackConfig) -> bool:
    """True when the cluster's postmaster is alive (pg_ctl status)."""
    data = data_dir(cfg)
    if not (data / "postmaster.pid").exists():
        return False
    return run_as_service([str(bin_dir() / "pg_ctl"), "-D", str(data), "status"]).returncode == 0


def connect(cfg: StackConfig, **kwargs):
    """A psycopg2 connection as the table owner."""
    return psycopg2.connect(**cfg.pg_kwargs(), connect_timeout=3, **kwargs)


def accepts_logins(cfg: StackConfig) -> bool:
    try:
        connect(cfg).close()
        return True
    except psycopg2.Error:
        return False


def ensure_database(cfg: StackConfig) -> None:
    """Create ``PGDATABASE`` when it is not the default ``postgres`` database and does not exist."""
    if cfg.pg_database == "postgres":
        return
    conn = psycopg2.connect(
        host=cfg.pg_host, port=cfg.pg_port, user=cfg.pg_user, password=cfg.pg_password, dbname="postgres"
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (cfg.pg_database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg.pg_database)))
    finally:
        conn.close()


def apply_schema(cfg: StackConfig) -> None:
    """Run ``postgres/*.sql`` in order as the owner, then set the connector role's password."""
    ensure_database(cfg)
    with connect(cfg) as conn, conn.cursor() as cur:
        for path in sorted(SQL_DIR.glob("*.sql")):
            cur.execute(path.read_text())
        cur.execute(
            sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(CONNECTOR_ROLE)), (cfg.connector_password,)
        )
    conn.close()


def stop(cfg: StackConfig, timeout: float = 60.0) -> bool:
    """Stop the server (fast shutdown: open sessions are ended, committed data is kept); True if it ran."""
    if not is_running(cfg):
        return False
    data = data_dir(cfg)
    result = run_as_service(
        [str(bin_dir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"]
    )
    if result.returncode != 0:
        result = run_as_service([str(bin_dir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
    return True

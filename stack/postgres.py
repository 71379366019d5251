"""A private PostgreSQL cluster under ``$STACK_HOME/postgres``, made with Debian's binaries."""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import shutil
from pathlib import Path

import psycopg2
from psycopg2 import sql

from stack.config import CONNECTOR_ROLE, REPO_ROOT, SINK_ROLE, StackConfig
from stack.errors import first_line
from stack.processes import StepError, chown_for_service, run_as_service, service_user, wait_until

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


@functools.cache
def _service_can_reach(path: Path) -> bool:
    """True when the PostgreSQL service account may traverse ``path`` (or its nearest existing ancestor)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return run_as_service(["test", "-x", str(path)]).returncode == 0


def cluster_root(cfg: StackConfig) -> Path:
    """Where the cluster lives: ``$STACK_HOME/postgres``, or a directory the ``postgres`` account owns.

    As root, PostgreSQL runs as the ``postgres`` account, which cannot reach a ``STACK_HOME`` under a home
    directory of mode 0700 (``/root`` on Debian). Rather than loosen the user's home, the cluster then lives
    under that account's own home (``/var/lib/postgresql/mnist-cdc/<checkout>-<hash>``, where Debian keeps its
    clusters too); ``stack up`` says so and ``down --purge`` removes it.
    """
    user = service_user()
    if user is None or _service_can_reach(cfg.home):
        return cfg.home / "postgres"
    digest = hashlib.sha256(str(cfg.home).encode()).hexdigest()[:10]
    return Path(user.pw_dir) / "mnist-cdc" / f"{cfg.home.parent.name or 'root'}-{digest}"


def is_relocated(cfg: StackConfig) -> bool:
    return cluster_root(cfg) != cfg.home / "postgres"


def data_dir(cfg: StackConfig) -> Path:
    return cluster_root(cfg) / "data"


def log_file(cfg: StackConfig) -> Path:
    """The server log; beside a relocated cluster (the service account writes it), linked from ``logs/``."""
    return cluster_root(cfg) / "postgres.log" if is_relocated(cfg) else cfg.logs / "postgres.log"


def purge(cfg: StackConfig) -> None:
    """Delete the cluster's files (``down --purge``), wherever ``cluster_root`` put them."""
    shutil.rmtree(cluster_root(cfg), ignore_errors=True)
    (cfg.logs / "postgres.log").unlink(missing_ok=True)


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
            # A slot nobody reads (a stopped connector, a killed benchmark) keeps WAL until the disk is full;
            # past 4 GB PostgreSQL invalidates it instead (wal_status 'lost'; `stack status` shows it).
            "max_slot_wal_keep_size = 4GB",
            # Bulk COPY of 60k images writes ~50 MB of WAL; avoid checkpoints in the middle of it.
            "max_wal_size = 2GB",
            "shared_buffers = 256MB",
            "",
        ]
    )


def _hba(cfg: StackConfig) -> str:
    # First match wins. The connector role may log in to PGDATABASE only (logical replication connections match
    # by database name too), so its REPLICATION attribute reaches that one database; no physical replication
    # line, which would let it copy every database's files with pg_basebackup. The sink's role, likewise, logs in
    # to PGDATABASE only (it has no REPLICATION attribute, so no replication line is needed for it).
    database = '"' + cfg.pg_database.replace('"', '""') + '"'
    return "\n".join(
        [
            "# TYPE  DATABASE     USER  ADDRESS       METHOD",
            f"host    {database}  {CONNECTOR_ROLE}  127.0.0.1/32  scram-sha-256",
            f"host    all          {CONNECTOR_ROLE}  127.0.0.1/32  reject",
            f"host    replication  {CONNECTOR_ROLE}  127.0.0.1/32  reject",
            f"host    {database}  {SINK_ROLE}  127.0.0.1/32  scram-sha-256",
            f"host    all          {SINK_ROLE}  127.0.0.1/32  reject",
            f"host    replication  {SINK_ROLE}  127.0.0.1/32  reject",
            "host    all          all   127.0.0.1/32  scram-sha-256",
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
    root.chmod(0o700)
    chown_for_service(root)
    # Only the service account may read the owner's password, from its creation on (0600, never the umask's).
    pwfile = root / "initdb.pw"
    pwfile.unlink(missing_ok=True)
    with os.fdopen(os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(cfg.pg_password + "\n")
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
    if is_relocated(cfg):
        _link_log(cfg, log)
    result = run_as_service(
        [str(bin_dir() / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(int(timeout)), "start"]
    )
    if result.returncode != 0:
        raise StepError(f"postgres: did not start on {cfg.pg_host}:{cfg.pg_port}; see {log}")
    if not wait_until(lambda: accepts_logins(cfg), 15):
        check_login(cfg)  # a wrong password says so, rather than "did not start"
        raise StepError(f"postgres: did not start on {cfg.pg_host}:{cfg.pg_port}; see {log}")


def _link_log(cfg: StackConfig, log: Path) -> None:
    """Keep ``$STACK_HOME/logs/postgres.log`` pointing at a relocated cluster's log, where users look first."""
    link = cfg.logs / "postgres.log"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or not link.exists():
        link.unlink(missing_ok=True)
        link.symlink_to(log)


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


def check_login(cfg: StackConfig) -> None:
    """Fail with one line when the owner cannot log in to the running server (wrong PGPASSWORD, say)."""
    try:
        # The maintenance database: PGDATABASE may not exist yet (ensure_database creates it).
        psycopg2.connect(**{**cfg.pg_kwargs(), "dbname": "postgres"}, connect_timeout=3).close()
    except psycopg2.OperationalError as error:
        if "password authentication failed" in str(error):
            raise StepError(
                f"postgres: password authentication failed for user {cfg.pg_user} on {cfg.pg_host}:{cfg.pg_port}: "
                "PGPASSWORD is not the password the cluster was created with"
            ) from None
        raise StepError(f"postgres: cannot log in on {cfg.pg_host}:{cfg.pg_port}: {first_line(error)}") from None


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
    """Run ``postgres/*.sql`` in order as the owner, then set the connector's and the sink's role passwords."""
    check_login(cfg)
    try:
        _apply_schema(cfg)
    except psycopg2.Error as error:
        raise StepError(f"postgres: applying {SQL_DIR}/*.sql failed: {first_line(error)}") from None


def _apply_schema(cfg: StackConfig) -> None:
    ensure_database(cfg)
    with connect(cfg) as conn, conn.cursor() as cur:
        for path in sorted(SQL_DIR.glob("*.sql")):
            cur.execute(path.read_text())
        for role, password in ((CONNECTOR_ROLE, cfg.connector_password), (SINK_ROLE, cfg.sink_password)):
            cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(role)), (password,))
    conn.close()


def apply_sql(cfg: StackConfig, statements: str, what: str) -> None:
    """Run ``statements`` (idempotent SQL, such as a dataset's) as the owner in one transaction; one line naming
    ``what`` when it fails."""
    check_login(cfg)
    try:
        with connect(cfg) as conn, conn.cursor() as cur:
            cur.execute(statements)
        conn.close()
    except psycopg2.Error as error:
        raise StepError(f"postgres: applying {what} failed: {first_line(error)}") from None


#: Slots that benchmarks and tests create are named bench_* and test_*; when such a run is killed its slot stays,
#: inactive, holding WAL. ``up`` drops them. Other slots (the connector's mnist_slot, a user's own) are kept.
STALE_SLOT_PATTERN = "^(bench|test)_"


def drop_stale_slots(cfg: StackConfig) -> list[tuple[str, str]]:
    """Drop inactive ``bench_*``/``test_*`` slots; return ``(name, WAL it retained)`` for each one dropped."""
    dropped = []
    conn = connect(cfg)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT slot_name, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) "
            "FROM pg_replication_slots WHERE NOT active AND slot_name ~ %s "
            "AND (database IS NULL OR database = current_database()) ORDER BY slot_name",
            (STALE_SLOT_PATTERN,),
        )
        for name, retained in cur.fetchall():
            try:
                cur.execute("SELECT pg_drop_replication_slot(%s)", (name,))
            except psycopg2.errors.ObjectInUse:
                continue  # its run came back in the meantime
            dropped.append((name, retained or "no"))
    finally:
        conn.close()
    return dropped


def slot_report(cfg: StackConfig) -> str:
    """One phrase per replication slot: active or not, and the WAL it keeps from being recycled."""
    try:
        with connect(cfg) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT slot_name, active, wal_status, "
                "pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) "
                "FROM pg_replication_slots ORDER BY slot_name"
            )
            rows = cur.fetchall()
        conn.close()
    except psycopg2.Error:
        return ""
    phrases = []
    for name, active, wal_status, retained in rows:
        state = "active" if active else "inactive"
        kept = f"retains {retained} of WAL" if retained is not None else f"WAL {wal_status} (needs a new snapshot)"
        phrases.append(f"slot {name} {state} {kept}")
    return "; ".join(phrases) if phrases else "no replication slots"


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

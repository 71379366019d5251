"""As root with the checkout under a 0700 home (``/root`` on Debian), PostgreSQL still starts: it cannot run as
root, and its ``postgres`` account cannot reach the checkout, so the cluster lives where that account can."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest

from stack import postgres
from stack.config import StackConfig
from tests.integration.support.backend import ROOT, free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the postgres account is used only when we are root")


def _stack(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stack", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_root_with_a_home_the_postgres_account_cannot_reach_starts_postgres(tmp_path):
    home = tmp_path / "root-home"
    home.mkdir(mode=0o700)
    stack_home = home / "checkout" / ".stack"
    stack_home.mkdir(parents=True)
    env = {**os.environ, "STACK_HOME": str(stack_home), "PGPORT": str(free_port()), "PGPASSWORD": "s3cret"}
    cfg = StackConfig.from_env(env)
    assert subprocess.run(["su", "-s", "/bin/sh", "postgres", "-c", f"test -x {stack_home}"]).returncode != 0

    try:
        created = postgres.ensure_cluster(cfg)
        postgres.start(cfg, timeout=60)

        assert created
        root = postgres.cluster_root(cfg)
        assert not root.is_relative_to(home), "the cluster must live where the postgres account can reach it"
        assert stat.S_IMODE(root.stat().st_mode) == 0o700, "only the postgres account may read the cluster"
        assert not (root / "initdb.pw").exists(), "the password file is removed after initdb"
        with psycopg2.connect(**cfg.pg_kwargs(), connect_timeout=5) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_setting('data_directory')")
            assert Path(cur.fetchone()[0]) == postgres.data_dir(cfg)
        assert (stack_home / "logs" / "postgres.log").resolve() == postgres.log_file(cfg)
        assert "database system is ready" in (stack_home / "logs" / "postgres.log").read_text()
    finally:
        postgres.stop(cfg)
        purged = _stack("down", "--purge", env=env)

    assert purged.returncode == 0, purged.stderr
    assert not postgres.cluster_root(cfg).exists(), "down --purge removes the relocated cluster too"


def test_the_initdb_password_file_is_never_readable_by_others(tmp_path, monkeypatch):
    """The owner's password file is created 0600 whatever the umask (a umask of 022 would make it 0644)."""
    seen: list[int] = []
    real_run = postgres.run_as_service

    def spy(argv, **kwargs):
        for arg in argv:
            if arg.startswith("--pwfile="):
                seen.append(stat.S_IMODE(Path(arg.split("=", 1)[1]).stat().st_mode))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(postgres, "run_as_service", spy)
    stack_home = tmp_path / ".stack"
    stack_home.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    cfg = StackConfig.from_env({"STACK_HOME": str(stack_home), "PGPORT": str(free_port())})
    old = os.umask(0o022)
    try:
        assert postgres.ensure_cluster(cfg)
    finally:
        os.umask(old)
        postgres.purge(cfg)

    assert seen == [0o600]

"""Both ways of running bound the WAL a replication slot may keep, with the same documented value."""

from __future__ import annotations

from stack import postgres
from stack.config import StackConfig

BOUND = "max_slot_wal_keep_size = 4GB"


def test_native_postgres_bounds_the_wal_slots_keep():
    conf = postgres._stack_conf(StackConfig.from_env({}))

    assert BOUND in conf.splitlines()


def test_compose_postgres_bounds_the_wal_slots_keep(services):
    command = services["postgres"]["command"]

    assert "max_slot_wal_keep_size=4GB" in command
    assert command[command.index("max_slot_wal_keep_size=4GB") - 1] == "-c"

"""python -m loader against the real PostgreSQL: counts, exact bytes, all-or-nothing, pacing, clear errors."""

from __future__ import annotations

import re
import struct
import uuid

import pytest

from loader.source import load_sample
from probes.database import connect, query_all, query_one
from probes.rows import execute
from stack.contract import MNIST
from tests.integration.support.backend import free_port


def count(pipeline, table: str) -> int:
    return query_one(pipeline.postgres, f"SELECT count(*) FROM public.{table}")[0]


def last_rows(pipeline, table: str, n: int) -> list[tuple[int, bytes]]:
    """The last ``n`` rows of ``table`` in id order, as (label, pixels)."""
    found = query_all(pipeline.postgres, f"SELECT label, pixels FROM public.{table} ORDER BY id DESC LIMIT %s", (n,))
    return [(label, bytes(pixels)) for label, pixels in found[::-1]]


def summary_seconds(stdout: str) -> float:
    return float(re.search(r"in ([0-9.]+) s", stdout).group(1))


def test_bulk_load_adds_the_rows_with_exact_bytes(pipeline):
    before = count(pipeline, MNIST.test_table)

    result = pipeline.run("loader", "--split", "test", "--limit", "50", "--no-progress")

    assert result.returncode == 0, result.stderr
    assert re.match(r"loaded 50 rows \(test\) in [0-9.]+ s, [0-9,]+ rows/s, bulk COPY", result.stdout)
    assert count(pipeline, MNIST.test_table) == before + 50
    expected = load_sample()["test"].head(50)
    assert last_rows(pipeline, MNIST.test_table, 50) == [
        (int(label), image.tobytes()) for label, image in zip(expected.labels, expected.images, strict=True)
    ]


def test_full_sample_loads_4000_train_and_1000_test(pipeline):
    train, test = count(pipeline, MNIST.train_table), count(pipeline, MNIST.test_table)

    result = pipeline.run("loader", "--no-progress")

    assert result.returncode == 0, result.stderr
    assert "loaded 5000 rows (train, test)" in result.stdout
    assert (count(pipeline, MNIST.train_table), count(pipeline, MNIST.test_table)) == (train + 4000, test + 1000)


REJECTED = bytes([0xDE, 0xAD, 0xBE, 0xEF])  # pixels starting with these are refused by the test's trigger


@pytest.fixture
def test_table_rejects_marked_rows(pipeline):
    """A trigger on mnist_test that fails the statement for a row whose pixels start with ``REJECTED``: the COPY
    into mnist_test fails after the COPY into mnist_train succeeded. Dropped after the test."""
    name = f"reject_marked_{uuid.uuid4().hex[:8]}"
    execute(
        pipeline.postgres,
        f"CREATE FUNCTION public.{name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF substring(NEW.pixels FROM 1 FOR 4) = '\\x{REJECTED.hex()}'::bytea THEN "
        "RAISE EXCEPTION 'row rejected by the test trigger'; END IF; RETURN NEW; END $$",
    )
    execute(
        pipeline.postgres,
        f"CREATE TRIGGER {name} BEFORE INSERT ON public.{MNIST.test_table} "
        f"FOR EACH ROW EXECUTE FUNCTION public.{name}()",
    )
    yield
    execute(pipeline.postgres, f"DROP TRIGGER {name} ON public.{MNIST.test_table}")
    execute(pipeline.postgres, f"DROP FUNCTION public.{name}()")


def write_idx_pair(directory, prefix: str, images: list[bytes], labels: list[int]) -> None:
    (directory / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 0x803, len(images), 28, 28) + b"".join(images)
    )
    (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, len(labels)) + bytes(labels))


def train_then_bad_test(directory) -> None:
    """5 good training rows, then 3 test rows of which the second is refused by the trigger."""
    write_idx_pair(directory, "train", [bytes([n]) * 784 for n in range(5)], [1, 2, 3, 4, 5])
    write_idx_pair(directory, "t10k", [bytes(784), REJECTED + bytes(780), bytes(784)], [6, 7, 8])


def test_failure_in_the_second_table_commits_nothing_in_the_first(pipeline, tmp_path, test_table_rejects_marked_rows):
    """The COPY into mnist_train succeeds, the one into mnist_test fails: the one transaction keeps neither."""
    train_then_bad_test(tmp_path)
    before = count(pipeline, MNIST.train_table), count(pipeline, MNIST.test_table)

    result = pipeline.run("loader", "--idx-dir", str(tmp_path), "--no-progress")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "nothing committed" in lines[0] and "row rejected by the test trigger" in lines[0]
    assert (count(pipeline, MNIST.train_table), count(pipeline, MNIST.test_table)) == before


def test_streaming_failure_says_how_many_rows_were_committed(pipeline, tmp_path, test_table_rejects_marked_rows):
    """Streaming commits batch by batch: the 5 training rows and the first test row are kept, and the error
    says so instead of "nothing committed"."""
    train_then_bad_test(tmp_path)
    before = count(pipeline, MNIST.train_table), count(pipeline, MNIST.test_table)

    result = pipeline.run("loader", "--idx-dir", str(tmp_path), "--rate", "1000", "--batch", "1", "--no-progress")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "6 rows committed before it" in lines[0] and "nothing committed" not in lines[0]
    assert (count(pipeline, MNIST.train_table), count(pipeline, MNIST.test_table)) == (before[0] + 5, before[1] + 1)


def test_corrupt_idx_file_names_it_and_writes_nothing(pipeline, tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 10, 28, 28) + bytes(784 * 9))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 10) + bytes(10))
    before = count(pipeline, MNIST.train_table)

    result = pipeline.run("loader", "--idx-dir", str(tmp_path), "--split", "train", "--no-progress")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {tmp_path}/train-images-idx3-ubyte: file is truncated: 7056 data bytes, the header announces 7840"
    )
    assert count(pipeline, MNIST.train_table) == before


def test_idx_directory_loads_like_the_official_files(pipeline, tmp_path):
    images = bytes(range(256)) * 3 + bytes(784 * 2 - 768)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 2, 28, 28) + images)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 2) + bytes([4, 8]))

    result = pipeline.run("loader", "--idx-dir", str(tmp_path), "--split", "test", "--no-progress")

    assert result.returncode == 0, result.stderr
    assert last_rows(pipeline, MNIST.test_table, 2) == [(4, images[:784]), (8, images[784:])]


def test_unreachable_database_names_host_and_port(pipeline):
    port = free_port()

    result = pipeline.run("loader", "--no-progress", extra_env={"PGPORT": str(port)})

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot connect to PostgreSQL at 127.0.0.1:{port}")


def test_streaming_paces_rows_at_the_requested_rate(pipeline):
    """200 rows at 100 rows/s in batches of 10: the last batch is due at 1.9 s; tolerance -10 % / +50 %."""
    before = count(pipeline, MNIST.test_table)

    result = pipeline.run("loader", "--split", "test", "--limit", "200", "--rate", "100", "--no-progress")

    assert result.returncode == 0, result.stderr
    assert "streamed at 100 rows/s in batches of 10" in result.stdout
    assert 1.9 * 0.9 <= summary_seconds(result.stdout) <= 1.9 * 1.5
    assert count(pipeline, MNIST.test_table) == before + 200


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rate", "0"], "--rate"),
        (["--rate", "nan"], "--rate"),
        (["--rate", "inf"], "--rate"),
        (["--split", "valid"], "--split"),
    ],
)
def test_usage_errors_exit_2(pipeline, args, message):
    result = pipeline.run("loader", *args)

    assert result.returncode == 2
    assert message in result.stderr


def test_truncate_empties_the_table_before_loading(pipeline):
    result = pipeline.run("loader", "--split", "test", "--limit", "5", "--truncate", "--no-progress")

    assert result.returncode == 0, result.stderr
    assert count(pipeline, MNIST.test_table) == 5


def test_every_loaded_row_has_its_own_wal_position(pipeline):
    """Without the tables' ``one_lsn_per_row`` trigger COPY logs ~9 rows under one LSN, and Debezium skips the rest
    of them when it resumes after a restart (docs/reliability.md). A temporary test_decoding slot shows the LSNs."""
    conn = connect(pipeline.postgres)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_create_logical_replication_slot('lsn_probe', 'test_decoding', true)")

            result = pipeline.run("loader", "--split", "test", "--limit", "60", "--no-progress")
            assert result.returncode == 0, result.stderr

            cur.execute(
                "SELECT lsn FROM pg_logical_slot_get_changes('lsn_probe', NULL, NULL) "
                f"WHERE data LIKE 'table public.{MNIST.test_table}: INSERT:%'"
            )
            lsns = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()  # drops the temporary slot
    assert len(lsns) == 60
    assert len(set(lsns)) == 60, f"60 rows share {len(set(lsns))} WAL positions"

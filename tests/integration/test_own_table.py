"""The README's "Your own table" section, run as written: its SQL creates a table that is neither MNIST nor iris,
its TOML is the one description written, and its commands (``stack add``, ``consumer.train``, ``consumer.predict
--follow``) are the ones run, read from README.md itself, so the section and this test cannot drift apart. Then
what a user checks: every live row has one prediction in the predictions table, scored from its latest version
(an UPDATE that moves a row across the boundary is predicted anew), and a DELETE removes its prediction.

The rows are separable (``label = f1 + f2 > 0``), so a model that learned them predicts the label; the rows the
test moves go far across the boundary, so their new prediction is not a coin toss.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
from pathlib import Path

import numpy as np

from probes.database import connect, query_all
from probes.deadline import poll
from stack.datasets import load
from tests.integration.support.backend import stop
from tests.integration.support.datasets import remove_dataset

ROOT = Path(__file__).resolve().parents[2]
ROWS = 400
DELETED = (5, 10, 15)
MOVED = 3  # rows of label 0 updated to the far side of the boundary, with the label that goes with it


def readme_blocks(title: str) -> dict[str, list[str]]:
    """The fenced code blocks of README.md's section ``title``, by language (``sql``, ``toml``, ``bash``)."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, list[str]] = {}
    for language, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        blocks.setdefault(language, []).append(body)
    return blocks


def commands(bash: str) -> list[list[str]]:
    """``python -m`` commands of a bash block, comments and a trailing ``&`` left out."""
    found = []
    for line in bash.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["python", "-m"]:
            found.append([w for w in words[2:] if w != "&"])
    return found


def execute(pipeline, sql: str, params=None) -> None:
    conn = connect(pipeline.postgres)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
    finally:
        conn.close()


def test_the_readme_s_own_table_steps_give_every_live_row_a_prediction_from_its_latest_version(pipeline, tmp_path):
    blocks = readme_blocks("Your own table")
    (sql,), (toml,), (bash,) = blocks["sql"], blocks["toml"], blocks["bash"]
    name = re.search(r'^name = "(\w+)"', toml, flags=re.M).group(1)
    (tmp_path / f"{name}.toml").write_text(toml)
    user = dataclasses.replace(pipeline, env={**pipeline.env, "DATASETS_PATH": str(tmp_path)})

    execute(pipeline, sql)
    rng = np.random.default_rng(11)
    features = rng.normal(size=(ROWS, 3)).astype(np.float32)
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    rows = [(*map(float, f), int(y)) for f, y in zip(features, labels, strict=True)]
    execute(pipeline, f"INSERT INTO {name} (f1, f2, f3, label) VALUES " + ",".join(["(%s,%s,%s,%s)"] * ROWS),
            [v for row in rows for v in row])  # fmt: skip

    add, train, predict = commands(bash)
    store = ROOT / "models" / name  # where the README's train publishes; a store the test made goes with it
    assert not store.exists(), f"{store} exists: this test would publish into it"
    predictor = None
    try:
        for step in (add, train):
            result = user.run(*step, timeout=600)
            assert result.returncode == 0, f"{' '.join(step)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        predictor = user.start(*predict)
        table = f"{name}_predictions"
        scored = poll(lambda: query_all(pipeline.postgres, f"SELECT count(*) FROM {table}")[0][0] >= ROWS, 180)
        assert scored, f"{query_all(pipeline.postgres, f'SELECT count(*) FROM {table}')} of {ROWS} predicted"
        right = query_all(pipeline.postgres, f"SELECT count(*) FROM {name} JOIN {table} p USING (id) "
                                             f"WHERE p.predicted = {name}.label")[0][0]  # fmt: skip
        assert right >= 0.9 * ROWS, f"only {right} of {ROWS} predictions are right"

        moved = [int(i) + 1 for i in np.flatnonzero(labels == 0) if int(i) + 1 not in DELETED][:MOVED]
        execute(pipeline, f"UPDATE {name} SET f1 = 4, f2 = 4, label = 1 WHERE id = ANY(%s)", (moved,))
        execute(pipeline, f"DELETE FROM {name} WHERE id = ANY(%s)", (list(DELETED),))

        def settled() -> bool:
            got = dict(
                query_all(
                    pipeline.postgres, f"SELECT id, predicted FROM {table} WHERE id = ANY(%s)", (moved + list(DELETED),)
                )
            )
            return all(i not in got for i in DELETED) and all(got.get(i) == 1 for i in moved)

        assert poll(settled, 120), (
            moved,
            query_all(pipeline.postgres, f"SELECT id, predicted FROM {table} WHERE id < 40"),
        )
    finally:
        out, err = stop(predictor) if predictor else ("", "")
        remove_dataset(pipeline, load(tmp_path / f"{name}.toml").contract)
        shutil.rmtree(store, ignore_errors=True)
    live = query_all(pipeline.postgres, f"SELECT count(*), count(p.id) FROM {name} LEFT JOIN {table} p USING (id)")
    assert live == [(ROWS - len(DELETED), ROWS - len(DELETED))], (live, out[-1500:], err[-1500:])
    assert query_all(pipeline.postgres, f"SELECT count(*) FROM {table}")[0][0] == ROWS - len(DELETED)

"""Checkpoints of continual training: model (weights and optimizer state), replay sample, offsets and counters
in one directory that appears whole or not at all.

A checkpoint directory (``--checkpoint-dir``) holds::

    ckpt-000007/        the previous checkpoint, kept until the next one is complete
    ckpt-000008/        model.keras, replay.npz, checkpoint.json
    latest -> ckpt-000008

``write`` fills ``.ckpt-000009.tmp-<pid>/``, fsyncs every file and the directory, renames it to ``ckpt-000009``
(atomic on one file system), fsyncs the parent, repoints ``latest`` (a new symlink renamed over the old one),
then removes the checkpoints older than the previous one. A process killed at any moment leaves the last
complete checkpoint readable: a ``.tmp`` directory is never read and is removed by the next ``write``.

``checkpoint.json``: ``records`` (learned from), ``malformed`` (skipped), ``offsets``
(``{"<partition>": next offset}``, where a restart reads on: every record before them is in ``records`` or
``malformed``, none after), ``topic``, ``group_id``, the prequential counters, ``sequence`` and ``written_at``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "checkpoint.json"
MODEL = "model.keras"
REPLAY = "replay.npz"
LATEST = "latest"
_NAME = re.compile(r"^ckpt-(\d{6,})$")
FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint on disk."""

    directory: Path
    manifest: dict

    @property
    def sequence(self) -> int:
        return int(self.manifest["sequence"])

    @property
    def records(self) -> int:
        return int(self.manifest["records"])

    @property
    def malformed(self) -> int:
        return int(self.manifest["malformed"])

    @property
    def offsets(self) -> dict[int, int]:
        return {int(p): int(o) for p, o in self.manifest["offsets"].items()}

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL

    @property
    def replay_path(self) -> Path:
        return self.directory / REPLAY

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.directory.iterdir() if path.is_file())


class CheckpointError(Exception):
    """A checkpoint directory, or a model to train on from, that cannot be used; the message is the one line the
    user sees."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(directory: Path) -> Checkpoint | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not {"records", "malformed", "offsets", "sequence"} <= manifest.keys():
        return None
    return Checkpoint(directory, manifest)


class CheckpointDir:
    """The checkpoints of one training run in ``root`` (made on the first ``write``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _complete(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = ((_NAME.match(entry.name), entry) for entry in self.root.iterdir())
        return sorted((int(match.group(1)), entry) for match, entry in found if match and entry.is_dir())

    def latest(self) -> Checkpoint | None:
        """The newest complete checkpoint, or None when there is none yet."""
        if self.root.exists() and not self.root.is_dir():
            raise CheckpointError(f"--checkpoint-dir {self.root} is not a directory")
        pointed = self.root / LATEST
        if pointed.is_dir():
            checkpoint = _read(pointed.resolve())
            if checkpoint is not None:
                return checkpoint
        for _, directory in reversed(self._complete()):
            checkpoint = _read(directory)
            if checkpoint is not None:
                return checkpoint
        return None

    def write(self, model, reservoir, manifest: dict) -> Checkpoint:
        """Write ``model`` (``.keras``: weights and optimizer state), ``reservoir`` (``Reservoir.save``) and
        ``manifest`` as the next checkpoint, atomically; returns it. Keeps the previous one, removes older."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".ckpt-*.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        complete = self._complete()
        sequence = (complete[-1][0] if complete else 0) + 1
        name = f"ckpt-{sequence:06d}"
        temp = self.root / f".{name}.tmp-{os.getpid()}"
        temp.mkdir()
        try:
            model.save(temp / MODEL)
            reservoir.save(temp / REPLAY)
            full = {"format": FORMAT, **manifest, "sequence": sequence, "written_at": time.time()}
            (temp / MANIFEST).write_text(json.dumps(full, indent=1, sort_keys=True) + "\n")
            for path in temp.iterdir():
                _fsync(path)
            _fsync(temp)
            os.rename(temp, self.root / name)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        _fsync(self.root)
        link = self.root / f".{LATEST}.tmp-{os.getpid()}"
        link.unlink(missing_ok=True)
        os.symlink(name, link)
        os.replace(link, self.root / LATEST)
        _fsync(self.root)
        for _, old in complete[:-1]:  # keep the previous one: the new one is complete, the older are not needed
            shutil.rmtree(old, ignore_errors=True)
        return Checkpoint(self.root / name, full)

"""Numbered model versions in one directory, and a "latest" that readers poll between batches.

A store is a directory (default ``models/mnist/``)::

    v0001.keras  v0002.keras  ...   every published model, never rewritten
    latest.keras                    a copy of the newest version
    latest.json                     {"version": N, "file": "vNNNN.keras"}
    v0001.json  v0002.json  ...     what each version is: when published, from which checkpoint, records, accuracy
    .publisher.lock                 held (``flock``) by the one process that publishes

``publish`` writes the next ``vNNNN.keras`` first, then replaces ``latest.keras`` and ``latest.json``, each
through a temporary file in the same directory and ``os.replace``: a reader sees the old or the new file, never
half of one. ``latest.json`` is replaced last, so the version it names is always complete on disk; readers
that want a consistent pair load the ``vNNNN.keras`` that ``latest()`` returns, not ``latest.keras``.

One process publishes to a store at a time: ``lock`` takes an exclusive ``flock`` on ``.publisher.lock`` for as
long as the process runs, so a second trainer pointed at the same store refuses instead of handing out the same
version number twice; any number of processes read. ``publish`` with ``keep`` removes the older versions except
the one ``latest.json`` names and those whose ``vNNNN.json`` names a checkpoint directory that still exists
(a restart resumes that checkpoint and compares against its version). ``promote`` points latest at an older
version: a rollback that readers following latest pick up.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

DEFAULT_STORE = Path("models/mnist")
LATEST_MODEL = "latest.keras"
#: What evaluate and predict follow by default: the default store's latest version.
DEFAULT_MODEL = str(DEFAULT_STORE / LATEST_MODEL)
LATEST_MANIFEST = "latest.json"
_VERSION_FILE = re.compile(r"^v(\d{4,})\.keras$")
LOCK_FILE = ".publisher.lock"
#: A temporary file older than this is left by a killed publish (a live one is renamed within seconds).
STALE_TEMP_S = 60.0


class StoreLockedError(Exception):
    """Another process publishes into the store; the message is the one line the user sees."""


class StoreLock:
    """The store's publisher lock, held until ``release`` or the process ends (the kernel drops it then)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


def version_file(version: int) -> str:
    """The file name of ``version``.

    >>> version_file(7)
    'v0007.keras'
    """
    return f"v{version:04d}.keras"


def info_file(version: int) -> str:
    """The file name of ``version``'s description.

    >>> info_file(7)
    'v0007.json'
    """
    return f"v{version:04d}.json"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace_atomically(directory: Path, name: str, write) -> None:
    """Call ``write(temp_path)`` then fsync and ``os.replace`` it onto ``directory / name``."""
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp" + Path(name).suffix, dir=directory)
    os.close(fd)
    temp_path = Path(temp)
    try:
        write(temp_path)
        os.chmod(temp_path, 0o666 & ~_umask())  # mkstemp makes 0600: readers may be other users
        with open(temp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp_path, directory / name)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class ModelStore:
    """Publish and find numbered model versions in ``directory`` (made on the first ``publish``)."""

    def __init__(self, directory: Path = DEFAULT_STORE) -> None:
        self.directory = Path(directory)

    @property
    def latest_model(self) -> Path:
        return self.directory / LATEST_MODEL

    def versions(self) -> list[int]:
        """Versions whose ``vNNNN.keras`` exists, oldest first."""
        if not self.directory.is_dir():
            return []
        found = (_VERSION_FILE.match(entry.name) for entry in self.directory.iterdir())
        return sorted(int(match.group(1)) for match in found if match)

    def latest_version(self) -> int | None:
        """The version ``latest.json`` names, or None (no store, nothing published, unreadable manifest).

        Cheap: one small file read, meant for polling between batches.
        """
        try:
            manifest = json.loads((self.directory / LATEST_MANIFEST).read_text())
            version = manifest["version"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return version if isinstance(version, int) and version > 0 else None

    def latest(self) -> tuple[int, Path] | None:
        """``(version, path of its vNNNN.keras)`` of the newest published version, or None."""
        version = self.latest_version()
        if version is None:
            return None
        path = self.directory / version_file(version)
        return (version, path) if path.is_file() else None

    def lock(self) -> StoreLock:
        """Become the store's one publisher (``StoreLockedError`` when another process is), and sweep the
        temporary files a killed publish left."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreLockedError(
                f"model store {self.directory} is in use by process {holder} (one publisher a store): stop it or "
                "give this run its own --model-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._sweep()
        return StoreLock(fd)

    def _sweep(self) -> None:
        now = time.time()
        for temp in self.directory.glob(".*.tmp*"):
            try:
                if now - temp.stat().st_mtime > STALE_TEMP_S:
                    temp.unlink()
            except OSError:
                pass  # gone already, or not ours to remove

    def next_version(self) -> int:
        """The number the next ``publish`` gives (stable while this process holds the lock)."""
        return max([*self.versions(), self.latest_version() or 0]) + 1

    def publish(self, model, info: dict | None = None, keep: int | None = None) -> int:
        """Save ``model`` as the next version with ``info`` (``checkpoint``, ``records``, ...) in its
        ``vNNNN.json``, then point ``latest.keras`` and ``latest.json`` at it; with ``keep``, remove the older
        versions retention does not keep (see the module). The number."""
        self.directory.mkdir(parents=True, exist_ok=True)
        version = self.next_version()
        name = version_file(version)
        # The numbered file goes through a temporary name too: a half-written vNNNN.keras is never visible.
        _replace_atomically(self.directory, name, lambda path: model.save(path))
        described = json.dumps({**(info or {}), "version": version, "published_at": time.time()}, indent=1)
        _replace_atomically(self.directory, info_file(version), lambda path: path.write_text(described + "\n"))
        self._point_latest(version)
        if keep is not None:
            self.prune(keep)
        return version

    def _point_latest(self, version: int) -> None:
        name = version_file(version)
        _replace_atomically(self.directory, LATEST_MODEL, lambda path: shutil.copyfile(self.directory / name, path))
        manifest = json.dumps({"version": version, "file": name}) + "\n"
        _replace_atomically(self.directory, LATEST_MANIFEST, lambda path: path.write_text(manifest))
        _fsync_dir(self.directory)

    def promote(self, version: int) -> None:
        """Point latest at ``version`` (a rollback); ``ValueError`` when the store has no such version."""
        if version not in self.versions():
            raise ValueError(f"model store {self.directory} has no version {version} (it has {self.versions()})")
        self._point_latest(version)

    def info(self, version: int) -> dict:
        """What ``vNNNN.json`` says of ``version`` (empty when it has none or it is unreadable)."""
        try:
            info = json.loads((self.directory / info_file(version)).read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def describe(self) -> list[dict]:
        """Every version's info, oldest first, with ``version`` and ``latest`` (whether latest names it)."""
        latest = self.latest_version()
        return [{**self.info(v), "version": v, "latest": v == latest} for v in self.versions()]

    def prune(self, keep: int) -> list[int]:
        """Remove every version but the newest ``keep``, the latest and those a live checkpoint names; the
        removed versions."""
        versions = self.versions()
        kept = set(versions[-keep:]) if keep > 0 else set()
        kept.add(self.latest_version() or 0)
        removed = []
        for version in versions:
            checkpoint = self.info(version).get("checkpoint")
            if version in kept or (checkpoint and Path(checkpoint).is_dir()):
                continue
            (self.directory / version_file(version)).unlink(missing_ok=True)
            (self.directory / info_file(version)).unlink(missing_ok=True)
            removed.append(version)
        return removed

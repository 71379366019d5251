"""Numbered model versions in one directory, and a "latest" that readers poll between batches.

A store is a directory (default ``models/mnist/``)::

    v0001.keras  v0002.keras  ...   every published model, never rewritten
    latest.keras                    a copy of the newest version
    latest.json                     {"version": N, "file": "vNNNN.keras"}

``publish`` writes the next ``vNNNN.keras`` first, then replaces ``latest.keras`` and ``latest.json``, each
through a temporary file in the same directory and ``os.replace``: a reader sees the old or the new file, never
half of one. ``latest.json`` is replaced last, so the version it names is always complete on disk; readers
that want a consistent pair load the ``vNNNN.keras`` that ``latest()`` returns, not ``latest.keras``.

One process publishes to a store at a time (training is one process); any number read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

DEFAULT_STORE = Path("models/mnist")
LATEST_MODEL = "latest.keras"
#: What evaluate and predict follow by default: the default store's latest version.
DEFAULT_MODEL = str(DEFAULT_STORE / LATEST_MODEL)
LATEST_MANIFEST = "latest.json"
_VERSION_FILE = re.compile(r"^v(\d{4,})\.keras$")


def version_file(version: int) -> str:
    """The file name of ``version``.

    >>> version_file(7)
    'v0007.keras'
    """
    return f"v{version:04d}.keras"


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

    def publish(self, model) -> int:
        """Save ``model`` as the next version, then point ``latest.keras`` and ``latest.json`` at it; the number."""
        self.directory.mkdir(parents=True, exist_ok=True)
        known = self.versions()
        version = max([*known, self.latest_version() or 0]) + 1
        name = version_file(version)
        # The numbered file goes through a temporary name too: a half-written vNNNN.keras is never visible.
        _replace_atomically(self.directory, name, lambda path: model.save(path))
        _replace_atomically(self.directory, LATEST_MODEL, lambda path: shutil.copyfile(self.directory / name, path))
        manifest = json.dumps({"version": version, "file": name}) + "\n"
        _replace_atomically(self.directory, LATEST_MANIFEST, lambda path: path.write_text(manifest))
        _fsync_dir(self.directory)
        return version

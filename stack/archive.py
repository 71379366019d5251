"""Unpack a plugin archive safely on every supported Python (3.10 to 3.13).

``tarfile``'s ``filter="data"`` (PEP 706) exists only from Python 3.11.4 and 3.12; Debian 12 ships 3.11.2. On
those Pythons the same rules are applied here before extracting: a member may not be absolute, may not climb out
of the target with ``..``, may not be a link that points outside it, and may not be a device or a FIFO.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Callable
from pathlib import Path


class UnsafeArchive(Exception):
    """An archive member would be written outside the target directory (or is not a plain file, dir or link)."""


def _inside(name: str) -> bool:
    """True when the relative POSIX path ``name`` stays inside the directory it is joined to.

    >>> _inside("debezium-connector-postgres/debezium-core.jar")
    True
    >>> _inside("a/../../etc/passwd")
    False
    >>> _inside("/etc/passwd")
    False
    """
    if name.startswith("/"):
        return False
    normal = posixpath.normpath(name)
    return normal != ".." and not normal.startswith("../")


def check_member(member: tarfile.TarInfo) -> None:
    """Raise ``UnsafeArchive`` for a member that ``filter="data"`` would refuse for leaving the target."""
    if not _inside(member.name):
        raise UnsafeArchive(f"{member.name!r} would be written outside the target directory")
    if member.issym():
        target = posixpath.join(posixpath.dirname(member.name), member.linkname)
        if member.linkname.startswith("/") or not _inside(target):
            raise UnsafeArchive(f"{member.name!r} links outside the target directory ({member.linkname!r})")
    elif member.islnk():
        if not _inside(member.linkname):
            raise UnsafeArchive(f"{member.name!r} links outside the target directory ({member.linkname!r})")
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f"{member.name!r} is a device or FIFO, not a file")


def extract_tar(
    archive: Path, target: Path, use_data_filter: bool | None = None, keep: Callable[[str], bool] | None = None
) -> None:
    """Extract ``archive`` into ``target``, refusing members that escape it (``UnsafeArchive``).

    The same checks run first on every Python, so an archive is refused (not rewritten) the same way everywhere;
    tarfile's own ``filter="data"`` then applies where it exists.

    ``use_data_filter`` defaults to whether this Python has ``tarfile.data_filter``; tests force the fallback.
    ``keep`` (a member name -> bool) unpacks part of an archive; every member is checked all the same.
    """
    if use_data_filter is None:
        use_data_filter = hasattr(tarfile, "data_filter")
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member)
        if keep is not None:
            members = [member for member in members if keep(member.name)]
        if use_data_filter:
            tar.extractall(target, members=members, filter="data")
            return
        for member in members:
            # What filter="data" also does: no owner or set-id bits from the archive.
            member.uid, member.gid = os.getuid(), os.getgid()
            member.uname = member.gname = ""
            member.mode &= 0o755 if member.isdir() or member.mode & 0o100 else 0o644
        tar.extractall(target, members=members)

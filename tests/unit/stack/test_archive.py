"""The plugin archive is unpacked on every supported Python, and members that escape the target are refused."""

import io
import tarfile

import pytest

from stack.archive import UnsafeArchive, extract_tar

# Both ways: tarfile's own filter="data" (Python >= 3.11.4) and our checks (Debian 12's 3.11.2, Python 3.10).
WAYS = [pytest.param(False, id="own-checks")]
if hasattr(tarfile, "data_filter"):
    WAYS.append(pytest.param(True, id="data-filter"))


def _archive(path, *members):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"jar", mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("use_data_filter", WAYS)
def test_a_plugin_archive_unpacks_into_the_target(tmp_path, use_data_filter):
    archive = _archive(
        tmp_path / "plugin.tar.gz",
        _file("debezium-connector-postgres/debezium-core.jar", b"core"),
        _file("debezium-connector-postgres/run.sh", b"#!/bin/sh\n", mode=0o755),
        _link("debezium-connector-postgres/core.jar", "debezium-core.jar"),
    )
    target = tmp_path / "plugins"
    target.mkdir()

    extract_tar(archive, target, use_data_filter=use_data_filter)

    assert (target / "debezium-connector-postgres" / "debezium-core.jar").read_bytes() == b"core"
    assert (target / "debezium-connector-postgres" / "core.jar").read_bytes() == b"core"
    assert (target / "debezium-connector-postgres" / "run.sh").stat().st_mode & 0o100


@pytest.mark.parametrize("use_data_filter", WAYS)
@pytest.mark.parametrize(
    "member",
    [
        pytest.param(_file("../escaped.jar"), id="dot-dot"),
        pytest.param(_file("plugin/../../escaped.jar"), id="dot-dot-inside"),
        pytest.param(_file("/tmp/escaped.jar"), id="absolute"),
        pytest.param(_link("plugin/evil", "../../escaped.jar"), id="symlink-out"),
        pytest.param(_link("plugin/evil", "/etc/passwd"), id="absolute-symlink"),
    ],
)
def test_a_member_that_escapes_the_target_is_refused_and_nothing_lands_outside(tmp_path, use_data_filter, member):
    archive = _archive(tmp_path / "evil.tar.gz", _file("plugin/ok.jar"), member)
    target = tmp_path / "deep" / "plugins"
    target.mkdir(parents=True)

    with pytest.raises(UnsafeArchive):
        extract_tar(archive, target, use_data_filter=use_data_filter)

    assert not (tmp_path / "escaped.jar").exists()
    assert not (tmp_path / "deep" / "escaped.jar").exists()


def test_a_device_member_is_refused_by_our_checks(tmp_path):
    info = tarfile.TarInfo("plugin/dev")
    info.type = tarfile.CHRTYPE
    archive = _archive(tmp_path / "dev.tar.gz", (info, None))

    with pytest.raises(UnsafeArchive, match="device"):
        extract_tar(archive, tmp_path, use_data_filter=False)

"""What differs between the supported Pythons (3.10-3.13) is declared once and said in one line."""

import subprocess
import sys

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def _requirements_on(python: str) -> dict[str, str]:
    """The project's dependencies as pip resolves their markers on CPython ``python`` (e.g. "3.13")."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    chosen = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(env):
            assert requirement.name not in chosen, f"{requirement.name} chosen twice on Python {python}"
            chosen[requirement.name] = str(requirement.specifier)
    return chosen


def test_supported_pythons_are_3_10_to_3_13():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10,<3.14"


def test_python_3_10_to_3_12_keep_tensorflow_2_16_with_tensorflow_io_and_numpy_1():
    for python in ("3.10", "3.11", "3.12"):
        chosen = _requirements_on(python)
        assert chosen["tensorflow"] == "==2.16.2"
        assert chosen["tensorflow-io"] == "==0.37.1"
        assert "<2" in chosen["numpy"]


def test_python_3_13_gets_a_tensorflow_with_cp313_wheels_and_no_tensorflow_io():
    chosen = _requirements_on("3.13")
    assert "tensorflow-io" not in chosen
    assert ">=2.20" in chosen["tensorflow"]
    assert Marker("python_version >= '3.13'").evaluate({"python_version": "3.13"})


def test_the_tfio_source_without_tensorflow_io_is_one_line_naming_the_python_it_needs():
    """On Python 3.13 tensorflow-io does not exist; blocking its import here shows the same message anywhere."""
    script = (
        "import sys; sys.modules['tensorflow_io'] = None\n"
        "from consumer.train import main\n"
        "sys.exit(main(['--source', 'tfio', '--bootstrap-servers', '127.0.0.1:9', '--model', sys.argv[1]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "/tmp/never-written.keras"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --source tfio needs tensorflow-io, which exists for Python <= 3.12 only")
    assert "Traceback" not in result.stderr

"""The unit tests' shared fixtures: docker-compose.yml as `docker compose` renders it, through compose-spec's Go
loader (built from tests/compose/render), for the compose checks and the native-versus-compose comparisons."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RENDER_SOURCE = ROOT / "tests" / "compose" / "render"


@pytest.fixture(scope="session")
def render_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not on PATH: the compose checks build compose-go's loader (Go >= 1.21, which fetches 1.24)")
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, timeout=60).stdout.strip()
    found = re.match(r"go(\d+)\.(\d+)", version)
    if not found or tuple(map(int, found.groups())) < (1, 21):
        pytest.skip(f"{go} is {version or 'unknown'}: compose-go needs Go >= 1.24 (1.21+ fetches it by itself)")
    binary = tmp_path_factory.mktemp("compose-render") / "render"
    # -buildvcs=false: a checkout owned by another user (CI, fresh-machine runs) makes VCS stamping fail.
    built = subprocess.run(
        [go, "build", "-buildvcs=false", "-o", str(binary), "."],
        cwd=RENDER_SOURCE,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, f"go build of {RENDER_SOURCE} failed:\n{built.stderr}"
    return binary


@pytest.fixture(scope="session")
def render(render_binary: Path) -> Callable[..., dict]:
    """``render(env, env_files)``: the project as `docker compose config` would print it, as a dict."""

    def _render(env: dict[str, str] | None = None, env_files: list[Path] = ()) -> dict:
        argv = [str(render_binary), "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml")]
        for env_file in env_files:
            argv += ["--env-file", str(env_file)]
        # Only what the test gives: a variable exported in the developer's shell must not change the result.
        result = subprocess.run(
            argv, env={"PATH": os.environ["PATH"], **(env or {})}, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return _render


@pytest.fixture(scope="session")
def services(render: Callable[..., dict]) -> dict[str, dict]:
    return render()["services"]

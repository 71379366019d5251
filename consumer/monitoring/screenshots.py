"""What a person sees on the dashboard: one TensorBoard chart pictured by a headless Chromium, and a check that
its line is drawn (pixels of the first run's colour inside the first chart's plot area)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# TensorBoard 2.16's time-series page in a 1200 x 700 window: the first chart's plot area (x0, y0, x1, y1), and
# the colour of the first run's line.
CHART_WINDOW = (1200, 700)
FIRST_CHART_PLOT = (330, 215, 910, 445)
FIRST_RUN_COLOUR = (0x42, 0x50, 0x66)


def find_chromium() -> str | None:
    """The path of a Chromium (Debian's ``chromium`` package) or Chrome on PATH, or None."""
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _chromium(url: str, *flags: str, size: tuple[int, int], budget_ms: int, timeout_s: float) -> str:
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("no chromium on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",  # root in CI and containers: Chromium's sandbox refuses to start there
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",  # its own profile: several runs at once do not share one
            f"--window-size={size[0]},{size[1]}",
            f"--virtual-time-budget={budget_ms}",  # let the page's timers and fetches run before the capture
            *flags,
            url,
        ]
        env = {**os.environ, "HOME": profile}
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def screenshot(
    url: str,
    out: Path,
    size: tuple[int, int] = CHART_WINDOW,
    budget_ms: int = 40000,
    timeout_s: float = 120,
    ready: Callable[[Path], bool] | None = None,
    attempts: int = 3,
) -> Path:
    """A PNG of ``url`` as a headless Chromium renders it, written to ``out``.

    ``ready(out)`` says whether the picture shows what it should; until it does, the page is pictured again
    with a longer virtual-time budget (a loaded machine may picture a chart before its data came), up to
    ``attempts`` times. The last picture is kept either way: the caller judges it.
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        out.unlink(missing_ok=True)
        _chromium(url, f"--screenshot={out}", size=size, budget_ms=budget_ms * attempt, timeout_s=timeout_s)
        if not out.is_file():
            raise RuntimeError(f"chromium wrote no screenshot to {out}")
        if ready is None or ready(out):
            break
    return out


def line_drawn(picture: Path) -> bool:
    """Whether a ``CHART_WINDOW`` picture of ``chart_url`` shows the first run's line across the first chart."""
    line = line_pixels(picture, FIRST_RUN_COLOUR, FIRST_CHART_PLOT)
    return len(line) > 300 and max(line) - min(line) > 400


def line_pixels(picture: Path, colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> list[int]:
    """The x of every pixel of ``colour`` (give or take 40 in R + G + B) inside ``box`` (x0, y0, x1, y1) of a
    PNG: how a test sees that a chart's line was drawn."""
    from PIL import Image  # noqa: PLC0415 - Pillow (through mlxtend's matplotlib): only the pictures need it

    with Image.open(picture) as image:
        rgb = image.convert("RGB")
    return [
        x
        for x in range(box[0], min(box[2], rgb.width))
        for y in range(box[1], min(box[3], rgb.height))
        if sum(abs(a - b) for a, b in zip(rgb.getpixel((x, y)), colour, strict=True)) < 40
    ]

"""scripts/screenshots.py, which regenerates the README's screenshots, run as a user runs it (in a subprocess)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import browser_support  # noqa: F401  (skips this module when Chromium or Playwright is missing)

pytestmark = pytest.mark.browser

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "screenshots.py"


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def test_the_script_shoots_every_page_of_the_demo_at_each_width(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--widths", "1200,800"],
                          capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["claude-session-800.png", "claude-session.png", "run-800.png", "run.png", "runs-800.png",
                     "runs.png", "spend-800.png", "spend.png", "whatif-800.png", "whatif.png"]
    # the demo's pages, then the recorded Claude Code session's run page (README's "Coding agents")
    assert done.stdout.split() == [str(tmp_path / n) for n in ("runs-800.png", "run-800.png", "spend-800.png",
                                                               "whatif-800.png", "runs.png", "run.png",
                                                               "spend.png", "whatif.png", "claude-session-800.png",
                                                               "claude-session.png")]
    for name in names:
        width, height = png_size(tmp_path / name)
        assert width == (800 if name.endswith("-800.png") else 1200), name
        assert height >= 1000, name  # full-page shots of a 1000 px window


def test_bad_widths_are_a_one_line_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--widths", "wide"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--widths 'wide' is not a comma-separated list of integers" in done.stderr
    assert list(tmp_path.iterdir()) == []

"""Without chDB (the optional ``runtrace[clickhouse]`` extra), the ClickHouse tests skip, saying why.

chDB is imported where a test asks for a ClickHouse (``scale_helpers.ClickHouse``); the
tests run here in a pytest of their own whose ``chdb`` cannot be imported, under a
hard timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_clickhouse_tests_skip_with_a_reason_when_chdb_is_absent(tmp_path: Path) -> None:
    blocker = tmp_path / "chdb"
    blocker.mkdir()
    (blocker / "__init__.py").write_text('raise ImportError("no chdb here")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), str(TESTS.parent / "src"), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-W", "ignore::pytest.PytestWarning",
         str(TESTS / "test_scale_innermost.py")],
        capture_output=True, text=True, timeout=300, env=env, cwd=TESTS.parent)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "failed" not in out and "error" not in out.lower(), out[-4000:]
    assert "chdb is not installed (pip install 'runtrace[clickhouse]')" in out, out[-4000:]
    summary = out.strip().splitlines()[-1]
    assert " skipped" in summary and " passed" not in summary, summary

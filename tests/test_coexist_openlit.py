"""runtrace next to OpenLIT in the same process (issue 12).

OpenLIT requires openai<2 (and anthropic<1), so it cannot share the main test
environment: ``.ci/run`` runs this file in a virtualenv of its own with OpenLIT and
a compatible openai. Elsewhere it is skipped, saying why. The driver and the
checks are tests/test_coexist.py's: each request the fake endpoint received counts
once, at exact dollars, and OpenLIT's own span of it is stored, marked
``runtrace.duplicate_of`` runtrace's span.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from test_coexist import OPENAI, ORDERS, assert_counted_once, drive

if os.environ.get("RUNTRACE_REQUIRE_OPENLIT") and importlib.util.find_spec("openlit") is None:
    raise RuntimeError("RUNTRACE_REQUIRE_OPENLIT is set (.ci/run's OpenLIT step) but openlit is not importable")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openlit") is None,
    reason="openlit is not installed: it requires openai<2, so .ci/run tests it in a venv of its own "
           "(pip install openlit 'openai<2')")


@pytest.mark.parametrize("order", ORDERS)
def test_openlit_openai_counted_once(tmp_path: Path, order: str) -> None:
    """The 5 OpenAI requests (sync, sync stream, async, async stream, sync): 5 calls, 180 in, 26 out, $0.00168."""
    assert_counted_once(drive(tmp_path, "openlit", order, "openai"), **OPENAI, peer_scope="openlit")

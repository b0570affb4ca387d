"""instrument(); uninstrument(); instrument() while another thread imports a client for the first time.

Before the fix this deadlocked (5 of 6 timings): the post-import hook, running with
the import lock of ``openai`` held, waited for ``_setup._lock``, while ``instrument()``
held ``_lock`` and fired the hook itself, whose import of openai waited for that import
lock. Each timing runs in a fresh interpreter (the first import is the race) with a
timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RACE = """
    import json, sys, threading, time
    import runtrace

    runtrace.instrument(store=False)  # registers the hooks before openai is imported
    started = threading.Event()

    def importer():
        started.set()
        import openai  # noqa: F401

    t = threading.Thread(target=importer)
    t.start()
    started.wait()
    time.sleep({delay})
    runtrace.uninstrument()
    runtrace.instrument(store=False)
    t.join()
    import openai
    print(json.dumps({{"patched": runtrace._setup.instrumented_clients(),
                      "wrapped": hasattr(openai.resources.chat.completions.Completions.create,
                                         "__wrapped__")}}))
"""


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4])
def test_reinstrument_during_the_first_import_of_a_client_does_not_deadlock(tmp_path, delay) -> None:
    script = tmp_path / "race.py"
    script.write_text(textwrap.dedent(RACE.format(delay=delay)))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr[-3000:]
    # the second instrument() patched openai, whichever thread ran its hook
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"patched": ["openai"], "wrapped": True}

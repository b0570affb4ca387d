"""The one installed state (``runtrace._state``), and the Run's public API apart from the instrumentation's.

``instrument()`` publishes one object and ``uninstrument()`` swaps it out: a call
under way on another thread meanwhile must finish cleanly, and afterwards no
module of runtrace may keep the old configuration alive (once, the tracer cache
of the LLM spans and the default pricer did). The thread scenario runs in a
child process with a hard timeout, so a deadlock fails instead of hanging.
"""

from __future__ import annotations

import ast
import json
import pydoc
import subprocess
import sys
import textwrap
from pathlib import Path

import runtrace
from runtrace import _config, pricing

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"

_STRADDLE_CHILD = textwrap.dedent('''
    import gc, json, logging, sys, threading, weakref

    import runtrace
    from runtrace import _config, pricing
    from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply

    problems = []

    class Collect(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                problems.append(record.getMessage())

    logging.getLogger("runtrace").addHandler(Collect())

    runtrace.instrument(store=sys.argv[1], capture_content=True,
                        prices={"straddle-model": {"input_per_mtok": 1_000_000, "output_per_mtok": 2_000_000}},
                        default_budget=runtrace.Budget(max_cost_usd=1000))
    settings, pricer = weakref.ref(_config.settings()), weakref.ref(pricing.default_pricer())
    arrived, release = threading.Event(), threading.Event()

    def answer(body):
        arrived.set()
        release.wait(30)
        return json_reply(chat_completion(model="straddle-model", content="late but fine",
                                          usage=ChatUsage(20, 5)))

    fake = FakeLLM(default=answer)
    client = fake.openai()
    out = {}

    def call():
        try:
            with runtrace.run("straddling") as run:
                reply = client.chat.completions.create(model="straddle-model",
                                                       messages=[{"role": "user", "content": "hi"}])
                out["text"] = reply.choices[0].message.content
                out["budget"] = run.budget.max_cost_usd
                out["totals"] = [run.totals.llm_calls, run.totals.cost_usd, run.totals.input_tokens,
                                 run.totals.output_tokens]
        except BaseException as exc:
            out["error"] = repr(exc)

    worker = threading.Thread(target=call)
    worker.start()
    assert arrived.wait(20), "the call never reached the transport"
    runtrace.uninstrument(timeout_millis=5_000)  # while the call is still waiting for its answer
    out["capture_after"] = _config.settings().capture_content
    release.set()
    worker.join(20)
    out["finished"] = not worker.is_alive()
    del worker, client, fake, call, answer
    gc.collect()
    out["settings_alive"] = settings() is not None
    out["pricer_alive"] = pricer() is not None
    out["problems"] = problems
    print(json.dumps(out))
''')


def test_a_call_running_during_uninstrument_finishes_and_nothing_keeps_the_old_state(tmp_path) -> None:
    env = {"PYTHONPATH": f"{SRC}:{TESTS}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _STRADDLE_CHILD, str(tmp_path / "runtrace.db")],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {
        "text": "late but fine",  # the call came back to its caller, no exception
        "budget": 1000,
        # priced with the prices of the instrument() it started under: 20 x $1 + 5 x $2
        "totals": [1, 30.0, 20, 5],
        "capture_after": False,  # the settings read after uninstrument() are the defaults
        "finished": True,
        "settings_alive": False,  # nothing in runtrace still points to the old settings...
        "pricer_alive": False,  # ...or to the old pricer
        "problems": [],  # and runtrace logged nothing about it
    }


def test_reinstrument_installs_a_whole_new_state_and_uninstrument_leaves_none(tmp_path) -> None:
    runtrace.uninstrument()
    process_pricer = pricing.default_pricer()
    first = runtrace.Budget(max_llm_calls=3)
    runtrace.instrument(store=tmp_path / "a.db", default_budget=first, capture_content=True,
                        prices={"m-one": {"input_per_mtok": 1, "output_per_mtok": 2}})
    try:
        installed = runtrace._state.current()
        assert installed is not None
        assert (installed.default_budget, installed.store_path) == (first, str(tmp_path / "a.db"))
        assert _config.settings() is installed.settings and installed.settings.capture_content is True
        assert pricing.default_pricer() is installed.pricer is not process_pricer
        assert runtrace.run("x").budget is first
    finally:
        runtrace.uninstrument()
    assert runtrace._state.current() is None
    assert pricing.default_pricer() is process_pricer  # instrument()'s prices went with it
    assert _config.settings().capture_content is False
    assert runtrace.run("y").budget is None

    runtrace.instrument(store=tmp_path / "b.db")
    try:
        again = runtrace._state.current()
        assert again is not None and again is not installed
        assert (again.default_budget, again.store_path, again.settings.capture_content) == (
            None, str(tmp_path / "b.db"), False)
        assert pricing.default_pricer() is process_pricer
    finally:
        runtrace.uninstrument()


# The Run a user holds: what README / DESIGN §1 / the Run docstring document, and nothing else.
DOCUMENTED_RUN_API = {
    "id", "name", "project", "owner", "budget", "metadata",  # what the run is
    "accept", "reject", "abandon", "outcome", "outcome_reason", "outcome_by", "stop_reason",  # verdicts
    "totals", "figures", "elapsed_s", "span",  # what it did so far
}


def test_run_shows_only_its_documented_api() -> None:
    run = runtrace.run("api", project="p", owner="o")
    public = {name for name in dir(run) if not name.startswith("_")}
    assert public == DOCUMENTED_RUN_API
    doc = runtrace.Run.__doc__ or ""
    assert {name for name in DOCUMENTED_RUN_API if f"``{name}" not in doc} == set()  # each is documented
    page = pydoc.render_doc(runtrace.Run, renderer=pydoc.plaintext)
    for hook in ("check_budget", "observe_prompt", "note_requested_tool_calls",
                 "requested_call_id", "observe_tool_call", "record_llm_call", "apply_breach",
                 "attribution", "mark_attributed", "projects_calls"):
        assert hook not in page, hook
        assert callable(getattr(run._live, hook)) or hook == "projects_calls"  # the instrumentation's side


def test_the_state_module_imports_nothing_of_runtrace_at_run_time() -> None:
    """pricing, metrics, runs and the instrumentations all read ``_state``: it must not import them back."""
    tree = ast.parse((SRC / "runtrace" / "_state.py").read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            type_only.update(id(inner) for inner in ast.walk(node))
    at_run_time = sorted(
        f"{'.' * node.level}{node.module or ''}" for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and id(node) not in type_only
        and (node.level > 0 or (node.module or "").startswith(("runtrace", "opentelemetry"))))
    assert at_run_time == []

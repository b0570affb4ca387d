"""Fork safety and the import-lock race: each scenario runs in a fresh interpreter with a hard timeout.

Both bugs were hangs, so every scenario is a subprocess: a regression fails
with a timeout instead of hanging the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from runtrace.store.db import Store
from runtrace.store.queries import list_runs

ROOT = Path(__file__).resolve().parents[1]
ENV_PATH = f"{ROOT / 'src'}:{ROOT / 'tests'}"


def run_script(code: str, tmp_path: Path, *, timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    script = tmp_path / "scenario.py"
    script.write_text(textwrap.dedent(code))
    full_env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ENV_PATH, "HOME": str(tmp_path), **(env or {})}
    done = subprocess.run([sys.executable, str(script)], env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


FORKS = """
    import json, os, sys, threading, time
    import runtrace
    from llm_fakes import FakeLLM, chat_completion, json_reply

    runtrace.instrument(store=sys.argv[1] if len(sys.argv) > 1 else {store!r})
    client = FakeLLM(default=json_reply(chat_completion())).openai()

    def call():
        client.chat.completions.create(model="gpt-5.5-2026-04-23", messages=[{{"role": "user", "content": "hi"}}])

    stop = threading.Event()

    def busy():  # keeps the store's write lock taken as often as possible
        while not stop.is_set():
            with runtrace.run("parent"):
                call()
            runtrace.flush()

    workers = [threading.Thread(target=busy, daemon=True) for _ in range(2)]
    for w in workers:
        w.start()
    time.sleep(0.2)
    pids = []
    for i in range({forks}):
        time.sleep(0.02)
        pid = os.fork()
        if pid == 0:
            with runtrace.run(f"child-{{i}}") as run:
                call()
                run.accept()
            if i % 2:
                runtrace.flush()
                os._exit(0)
            sys.exit(0)  # a normal exit: the spans leave at interpreter exit
        pids.append(pid)
    hung, failed = 0, 0
    deadline = time.monotonic() + 40
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                pending.discard(pid)
                failed += os.waitstatus_to_exitcode(status) != 0
        time.sleep(0.05)
    for pid in pending:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    stop.set()
    for w in workers:
        w.join(10)
    runtrace.flush()
    print(json.dumps({{"hung": len(pending), "failed": failed}}))
"""


def child_runs(store: Path) -> dict[str, tuple[str, int]]:
    s = Store.open(store, create=False)
    try:
        return {r["name"]: (r["outcome"], r["llm_calls"]) for r in list_runs(s, limit=0)
                if r["name"].startswith("child-")}
    finally:
        s.close()


def test_forked_children_of_a_busy_parent_exit_and_store_their_spans(tmp_path) -> None:
    store = tmp_path / "fork.db"
    result = run_script(FORKS.format(store=str(store), forks=20), tmp_path, timeout=120,
                        env={"OTEL_BSP_SCHEDULE_DELAY": "1"})
    assert result == {"hung": 0, "failed": 0}
    assert child_runs(store) == {f"child-{i}": ("accepted", 1) for i in range(20)}


MULTIPROCESSING = """
    import json, multiprocessing, sys, threading, time
    import runtrace
    from llm_fakes import FakeLLM, chat_completion, json_reply

    runtrace.instrument(store={store!r})
    client = FakeLLM(default=json_reply(chat_completion())).openai()

    def call():
        client.chat.completions.create(model="gpt-5.5-2026-04-23", messages=[{{"role": "user", "content": "hi"}}])

    def child(i):
        with runtrace.run(f"child-{{i}}") as run:
            call()
            run.accept()
        runtrace.flush()

    stop = threading.Event()

    def busy():
        while not stop.is_set():
            with runtrace.run("parent"):
                call()
            runtrace.flush()

    if __name__ == "__main__":
        workers = [threading.Thread(target=busy, daemon=True) for _ in range(2)]
        for w in workers:
            w.start()
        time.sleep(0.2)
        ctx = multiprocessing.get_context("fork")
        hung = failed = 0
        for i in range({count}):
            p = ctx.Process(target=child, args=(i,))
            p.start()
            p.join(20)
            if p.is_alive():
                hung += 1
                p.kill()
                p.join()
            elif p.exitcode != 0:
                failed += 1
        stop.set()
        for w in workers:
            w.join(10)
        runtrace.flush()
        print(json.dumps({{"hung": hung, "failed": failed}}))
"""


def test_multiprocessing_fork_children_flush_into_the_store(tmp_path) -> None:
    store = tmp_path / "mp.db"
    result = run_script(MULTIPROCESSING.format(store=str(store), count=6), tmp_path, timeout=200,
                        env={"OTEL_BSP_SCHEDULE_DELAY": "1"})
    assert result == {"hung": 0, "failed": 0}
    assert child_runs(store) == {f"child-{i}": ("accepted", 1) for i in range(6)}


LOCK_HELD_AT_FORK = """
    import json, os, threading, time
    import runtrace
    from opentelemetry.sdk.trace import SpanProcessor

    release = threading.Event()
    entered = threading.Event()

    class SlowFlush(SpanProcessor):
        def force_flush(self, timeout_millis=30000):
            entered.set()
            release.wait(20)
            return True

    runtrace.instrument(store={store!r}, span_processors=(SlowFlush(),))
    # another thread is inside uninstrument(), holding runtrace's setup lock, when we fork
    t = threading.Thread(target=runtrace.uninstrument, kwargs={{"timeout_millis": 20_000}})
    t.start()
    entered.wait(10)
    pid = os.fork()
    if pid == 0:
        runtrace.uninstrument(timeout_millis=1000)  # the child's own state: already detached
        runtrace.instrument(store={store!r})
        with runtrace.run("child") as run:
            run.accept()
        os._exit(0 if runtrace.flush(5000) else 3)
    deadline = time.monotonic() + 20
    code = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    release.set()
    t.join(20)
    print(json.dumps({{"child_exit": code}}))
"""


def test_a_child_forked_while_a_parent_thread_holds_the_setup_lock_can_reinstrument(tmp_path) -> None:
    store = tmp_path / "lock.db"
    result = run_script(LOCK_HELD_AT_FORK.format(store=str(store)), tmp_path, timeout=90)
    assert result == {"child_exit": 0}  # None: the child hung on the lock the parent's thread held
    s = Store.open(store, create=False)
    try:
        assert [(r["name"], r["outcome"]) for r in list_runs(s, limit=0)] == [("child", "accepted")]
    finally:
        s.close()


HELD_LOCKS_AT_FORK = """
    import json, os, threading
    import runtrace
    from runtrace import _processors, runs
    from runtrace._forksafe import _locks

    runtrace.instrument(store=False)
    with runtrace.run("parent") as run:
        marker, stamp = _processors.DuplicateMarker(), _processors.RunStampProcessor()
        held = [marker._lock, stamp._lock, run._live.lock, runs._local_runs_lock]
        taken, release = threading.Event(), threading.Event()

        def hold():
            for lock in held:
                lock.acquire()
            taken.set()
            release.wait(30)
            for lock in held:
                lock.release()

        t = threading.Thread(target=hold)
        t.start()
        taken.wait(10)
        pid = os.fork()
        if pid == 0:  # every runtrace lock, held by the parent's thread at fork, is free here
            free = sum(lock.acquire(timeout=2) for lock in list(_locks))
            os._exit(0 if free == len(_locks) else 3)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        release.set()
        t.join(10)
    print(json.dumps({"child_exit": code, "held": len(held)}))
"""


def test_every_runtrace_lock_a_parent_thread_held_at_fork_is_free_in_the_child(tmp_path) -> None:
    # A child forked while another thread was inside DuplicateMarker.on_start hung at its
    # first span (1 of 20 forks in CI): each lock is copied held and its holder is not copied.
    result = run_script(HELD_LOCKS_AT_FORK, tmp_path, timeout=60)
    assert result == {"child_exit": 0, "held": 4}


def test_runtrace_makes_its_locks_fork_safe() -> None:
    """A plain ``threading.Lock`` in instrumentation code is the fork hang above waiting to recur.

    The store (its own fork hooks wait for a write in progress) and the server (never forks
    with threads holding locks) keep theirs.
    """
    src = ROOT / "src" / "runtrace"
    plain = [str(p.relative_to(src)) for p in sorted(src.rglob("*.py"))
             if p.parts[-2] not in ("store", "server") and p.name != "_forksafe.py"
             and ("threading.Lock(" in p.read_text() or "threading.RLock(" in p.read_text())]
    assert plain == []

"""A finished call takes its run's lock once for the totals and the detectors together (issue 14).

The run's detectors share the run's lock, so an LLM call's end (totals, then the
completion's loop detector and context tracker) and a tool call's end (detectors,
then totals) are one acquisition each, of the lock object itself (``lock.raw``:
no Python-level enter/exit). Merged, they must still add up exactly when the
calls of one run finish on several threads at once.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace import semconv as sc


class _CountingLock:
    """A lock that counts how often it is entered (stands in for ``ForkSafeLock.raw``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entered = 0

    def __enter__(self) -> bool:
        self._lock.acquire()
        self.entered += 1
        return True

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        self.entered += got
        return got

    def release(self) -> None:
        self._lock.release()


def test_a_chat_call_takes_the_runs_lock_twice_and_a_tool_call_once(instrumented: Any) -> None:
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", content="Done.",
                                                      usage=ChatUsage(100, 10))))
    client = fake.openai()
    read_file = runtrace.tool(name="read_file")(lambda path: "x = 1")
    with runtrace.run("locks") as run:
        live = run._live
        assert live._detectors._lock is live.lock  # one lock for the totals and the detectors
        counting = _CountingLock()
        live.lock.raw = counting  # type: ignore[assignment]
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        after_chat = counting.entered
        read_file(path="a.py")
        after_tool = counting.entered
    # the prompt's detectors at the start; the totals with the completion's detectors at the end
    # (three acquisitions of two locks before)
    assert after_chat == 2
    assert after_tool - after_chat == 1  # the detectors with the totals (two, and a third on a loop, before)
    assert (run.totals.llm_calls, run.totals.tool_calls, run.totals.input_tokens) == (1, 1, 100)


def test_calls_of_one_run_finishing_on_eight_threads_add_up_exactly(instrumented: Any) -> None:
    threads_n, calls_n = 8, 25
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", content="Same answer.",
                                                      usage=ChatUsage(1000, 40, cached_tokens=200,
                                                                      reasoning_tokens=8))))
    client = fake.openai()
    read_file = runtrace.tool(name="read_file")(lambda path: "x = 1")
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def work(t: int) -> None:
        try:
            start.wait(30)
            for i in range(calls_n):
                client.chat.completions.create(model="gpt-4o-mini",
                                               messages=[{"role": "user", "content": f"thread {t} call {i}"}])
                read_file(path="a.py")  # the same read every time: all but the first are repeats
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    with runtrace.run("threads") as run:
        # each thread runs in a copy of this context: the run is current in all of them
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(work, t), daemon=True)
                   for t in range(threads_n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)  # a deadlock fails here instead of hanging the suite
        assert not any(th.is_alive() for th in threads)
    assert errors == []
    total = threads_n * calls_n
    t = run.totals
    spans = instrumented.spans()
    llm = [s for s in spans if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME) == sc.OP_CHAT]
    assert len(llm) == total
    one_cost = llm[0].attributes[sc.COST_USD]
    assert all(s.attributes[sc.COST_USD] == one_cost for s in llm)
    assert (t.llm_calls, t.input_tokens, t.output_tokens, t.cached_input_tokens, t.reasoning_tokens,
            t.unpriced_calls) == (total, 1000 * total, 40 * total, 200 * total, 8 * total, 0)
    assert round(t.cost_usd * 1e9) == round(one_cost * total * 1e9)
    assert (t.tool_calls, t.repeated_reads, t.loop_detected) == (total, total - 1, True)
    # each detection fires exactly once however the threads interleave: the same completion
    # reaching the threshold, and the same tool call reaching its own
    loops = [(s.name, e.attributes[sc.LOOP_KIND]) for s in spans for e in s.events if e.name == sc.EVENT_LOOP]
    assert sorted(kind for _name, kind in loops) == ["same_call", "same_completion"]
    repeated = [s for s in spans if (s.attributes or {}).get(sc.TOOL_REPEATED_READ) is True]
    assert len(repeated) == total - 1

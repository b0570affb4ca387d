"""An instrumented call reads the installed state once at its start and once at its end (issue 14).

It read it nine times a chat call: the wrapper's and the lifecycle's activity
checks, the settings, the pricer, the policy three times, the metrics. Now the
wrapper reads it and hands it down; the call's end reads it again so the metrics
and the policy that hear of a call are the ones in effect when it ends.
"""

from __future__ import annotations

from typing import Any

import pytest

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace import _state
from runtrace import semconv as sc


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads = [0]
    real = _state.current

    def current() -> Any:
        reads[0] += 1
        return real()

    monkeypatch.setattr(_state, "current", current)
    return reads


def test_a_chat_call_reads_the_state_twice_and_a_tool_call_once(instrumented: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", content="Done.",
                                                      usage=ChatUsage(100, 10))))
    client = fake.openai()
    read_file = runtrace.tool(name="read_file")(lambda path: "x = 1")
    with runtrace.run("reads") as run:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        reads = _counting(monkeypatch)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}])
        chat = reads[0]
        read_file(path="a.py")
        tool = reads[0] - chat
        monkeypatch.undo()
    # the wrapper's read, handed down, and the end's; plus the openai request reader's settings
    # (one provider contract for every SDK: it reads the settings itself) and the pricer, asked
    # for by name (pricing.default_pricer, which tests and tools replace). Nine before.
    assert chat == 4
    assert tool == 1
    llm = instrumented.llm_spans()
    assert [s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] for s in llm] == [100, 100]
    assert llm[0].attributes[sc.COST_USD] == llm[1].attributes[sc.COST_USD] > 0  # both priced alike
    assert (run.totals.llm_calls, run.totals.tool_calls) == (2, 1)

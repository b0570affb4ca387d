"""Work a call no longer does when nothing needs it (issue 14), and what still happens when something does.

- ``DuplicateMarker`` looks up an LLM span's parent, thread and asyncio task only
  while another instrumentation's LLM span is open (it marks that one);
- a tool call's steps are ``try``/``except`` with the labels ``fail_open`` logs, no
  guard entered, and a failing step still fails open under its own label.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace import _internal, _processors, detect
from runtrace import semconv as sc
from runtrace.instrumentation._llm import RequestedToolCall, ResponseData, completion_text


def _counting_owner(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = _processors._owner

    def owner() -> tuple[int, int]:
        calls[0] += 1
        return real()

    monkeypatch.setattr(_processors, "_owner", owner)
    return calls


def test_an_llm_span_alone_is_not_matched_but_one_inside_a_foreign_llm_span_marks_it(
        instrumented: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(100, 10))))
    client = fake.openai()
    owners = _counting_owner(monkeypatch)
    with runtrace.run("alone"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert owners[0] == 0  # was one a call: the thread and task of a span nothing can be beside

    foreign = trace.get_tracer("other.instrumentation")
    with runtrace.run("wrapped"), foreign.start_as_current_span(
            "chat gpt-4o-mini", attributes={sc.GEN_AI_OPERATION_NAME: sc.OP_CHAT}) as outer:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert owners[0] == 2  # the foreign span's start and then ours, which is matched to it
    ours = [s for s in instrumented.llm_spans() if s.instrumentation_scope.name in sc.RUNTRACE_LLM_SCOPES][-1]
    marked = next(s for s in instrumented.spans() if s.context.span_id == outer.get_span_context().span_id)
    assert marked.attributes[sc.DUPLICATE_OF] == trace.format_span_id(ours.context.span_id)
    assert sc.DUPLICATE_OF not in ours.attributes


def test_a_tool_call_enters_no_guard_and_a_failing_step_fails_open_under_its_label(
        instrumented: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    entered = [0]
    real_enter = _internal.fail_open.__enter__

    def counting(self: _internal.fail_open) -> None:
        entered[0] += 1
        return real_enter(self)

    read_file = runtrace.tool(name="read_file")(lambda path: "x = 1")
    monkeypatch.setattr(_internal.fail_open, "__enter__", counting)
    with runtrace.run("tools") as run:
        assert read_file(path="a.py") == "x = 1"
    assert entered[0] == 0  # was three: start, end, attributes

    monkeypatch.setenv("RUNTRACE_FAIL_OPEN_IN_TESTS", "1")
    monkeypatch.setattr(detect, "estimate_tokens", lambda text: 1 / 0)
    with caplog.at_level("WARNING", logger="runtrace"), runtrace.run("tools again") as run:
        assert read_file(path="b.py") == "x = 1"  # the caller's result, untouched
    assert "runtrace: internal error in tool span end" in caplog.text
    span = [s for s in instrumented.spans() if s.name == "execute_tool read_file"][-1]
    assert span.attributes[sc.TOOL_ARGS_HASH] == detect.stable_hash({"path": "b.py"})
    assert sc.TOOL_RESULT_HASH not in span.attributes  # the failed step's attributes, and only those, are lost
    assert run.totals.tool_calls == 0


def test_the_completion_text_with_and_without_tool_calls() -> None:
    assert completion_text(ResponseData(text="Done.")) == "Done."
    calls = [RequestedToolCall("c1", "read_file", '{"path": "a.py"}'), RequestedToolCall("c2", "ls", None)]
    assert completion_text(ResponseData(text="Reading.", tool_calls=calls)) == \
        'Reading.\nread_file({"path": "a.py"})\nls()'
    assert completion_text(ResponseData(tool_calls=calls[1:])) == "ls()"


def test_an_sdk_chunk_is_one_accumulator_call_and_reads_the_same() -> None:
    import sys

    from openai._models import construct_type
    from openai.types.chat import ChatCompletionChunk

    from llm_fakes import chat_chunks
    from runtrace.instrumentation import openai as openai_inst

    bodies = chat_chunks(pieces=("Hel", "lo", "!"), usage=ChatUsage(100, 10, cached_tokens=20))
    chunks = [construct_type(type_=ChatCompletionChunk, value=b) for b in bodies]
    assert all(type(c) is ChatCompletionChunk for c in chunks)
    acc, walked = openai_inst.ChatAccumulator(), openai_inst.ChatAccumulator()
    calls: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename == openai_inst.__file__:
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        for c in chunks:
            acc.add(c)
    finally:
        sys.setprofile(None)
    # per chunk the accumulator's add and nothing else of the module's (add then _add_sdk before);
    # the usage chunk reads its usage (chat_usage, _sdk_usage, five _int_or_none)
    assert calls.count("add") == len(chunks) == 6
    assert [n for n in calls if n != "add"] == ["chat_usage", "_sdk_usage", *["_int_or_none"] * 5]
    for b in bodies:
        walked.add(b)  # the JSON bodies take the generic walk: the same result
    assert acc.result() == walked.result()
    assert (acc.result().text, acc.result().usage.input_tokens) == ("Hello!", 100)

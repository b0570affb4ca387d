"""Fuzzing the openai instrumentation with odd responses: the caller sees what the client alone gives.

Each example is a response the real API would never send, or a broken stream:
usage missing, null or of the wrong type, unknown models, extra and missing
fields, empty or absent choices, cut SSE streams, garbage events. Every example
is sent twice through the same real client over the same mock transport: once
past runtrace (the patched method's own pass-through, as for a nested call) and
once instrumented. The oracle is differential: the instrumented call must return
the same value or raise the same exception type as the bare client, so no
exception reaches the caller other than the client's own.

``RUNTRACE_FAIL_OPEN_IN_TESTS=1`` makes ``fail_open`` behave as in production
(log and swallow) instead of re-raising under pytest; every internal error it
swallows is recorded, and the tests require there were none: each would be a
bug of runtrace's, not of the response.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runtrace
from llm_fakes import (
    ChatUsage,
    ClaudeUsage,
    FakeLLM,
    Reply,
    chat_chunks,
    chat_completion,
    claude_events,
    claude_message,
    response_events,
    response_object,
    sse_data,
    sse_events,
    tool_call,
)
from runtrace import _internal
from runtrace import semconv as sc
from runtrace.instrumentation import _wrap

has_anthropic = pytest.mark.skipif(importlib.util.find_spec("anthropic") is None, reason="anthropic not installed")
has_responses = pytest.mark.skipif(importlib.util.find_spec("openai.resources.responses") is None,
                                   reason="this openai has no Responses API")
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, instrumented: Any) -> Iterator[list[tuple[str, BaseException]]]:
    """fail_open as in production; yields the internal errors it swallowed."""
    monkeypatch.setenv("RUNTRACE_FAIL_OPEN_IN_TESTS", "1")
    swallowed: list[tuple[str, BaseException]] = []
    original = _internal.log_internal_error

    def record(where: str, exc: BaseException) -> None:
        swallowed.append((where, exc))
        original(where, exc)

    monkeypatch.setattr(_internal, "log_internal_error", record)
    yield swallowed


# --- mutations of JSON bodies -----------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(st.text(max_size=8), inner,
                                                                             max_size=3)),
                          max_leaves=6)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


@st.composite
def mutated(draw: st.DrawFn, body: Any, max_mutations: int = 3) -> Any:
    """``body`` with a few fields deleted, nulled, emptied or replaced by any JSON value."""
    body = copy.deepcopy(body)
    for _ in range(draw(st.integers(0, max_mutations))):
        paths = list(_paths(body))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        op = draw(st.sampled_from(["delete", "null", "empty", "replace", "add"]))
        if op == "delete":
            del parent[key]
        elif op == "null":
            parent[key] = None
        elif op == "empty":
            parent[key] = {} if isinstance(parent[key], dict) else [] if isinstance(parent[key], list) else ""
        elif op == "replace":
            parent[key] = draw(json_value)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(json_value)
    return body


USAGES = st.sampled_from([ChatUsage(20, 5), ChatUsage(0, 0), ChatUsage(1000, 10, cached_tokens=900),
                          ChatUsage(10, 50, reasoning_tokens=40), None])
MODELS = st.sampled_from(["gpt-5.5-2026-04-23", "gpt-4o-mini", "no-such-model-xyz", "", "GPT-4O"])


@st.composite
def chat_bodies(draw: st.DrawFn) -> Any:
    calls = draw(st.sampled_from([(), (tool_call("call_1", "read_file", {"path": "a.py"}),)]))
    body = chat_completion(model=draw(MODELS), usage=draw(USAGES), tool_calls=calls,
                           content=draw(st.sampled_from(["Hello!", None, ""])))
    return draw(mutated(body))


@st.composite
def broken_sse(draw: st.DrawFn, chunks: list[Any], framing: Callable[[list[Any]], bytes]) -> bytes:
    """A stream's bytes, its chunks mutated, then maybe cut short or salted with garbage."""
    chunks = [draw(mutated(c, 1)) if draw(st.booleans()) else c for c in chunks]
    data = framing(chunks)
    damage = draw(st.sampled_from(["none", "cut", "garbage", "drop_done"]))
    if damage == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    elif damage == "garbage":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"data: {not json\n\n", b"\n\n\n", b"event: x\n\n",
                                                 b"data: [DONE]\n\n", b"\xff\xfe\x00"])) + data[at:]
    elif damage == "drop_done":
        data = data.replace(b"data: [DONE]\n\n", b"")
    return data


# --- the differential oracle --------------------------------------------------------

def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return "raised", type(exc)


def _bare(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Call ``fn`` with runtrace's wrappers passing straight through (as for a nested SDK call)."""
    def call() -> Any:
        token = _wrap.IN_LLM_CALL.set(True)
        try:
            return fn()
        finally:
            _wrap.IN_LLM_CALL.reset(token)
    return call


def _plain(value: Any) -> Any:
    """An SDK result as comparable data (models dumped, streams as their chunks)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def check_same_outcome(instrumented: Any, swallowed: list[tuple[str, BaseException]], reply: Reply,
                       request: Callable[[Any], Any], *, sdk: str = "openai") -> None:
    fake = FakeLLM(default=reply)
    client = fake.anthropic() if sdk == "anthropic" else fake.openai()
    instrumented.exporter.clear()
    bare = _outcome(_bare(lambda: _plain(request(client))))
    assert not instrumented.llm_spans(), "the pass-through made a span"
    with runtrace.run("fuzz") as run:
        seen = _outcome(lambda: _plain(request(client)))
        run.accept()
    assert seen == bare
    spans = instrumented.llm_spans()
    assert len(spans) == 1, [s.name for s in spans]  # the call's span ended, once
    assert spans[0].attributes[sc.RUN_ID] == run.id
    assert not swallowed, [(where, repr(exc)) for where, exc in swallowed]


MESSAGES = [{"role": "user", "content": "hi"}]


@FUZZ
@given(body=chat_bodies(), status=st.sampled_from([200, 200, 200, 400, 500]))
def test_odd_chat_completions_reach_the_caller_as_the_client_gives_them(
        instrumented: Any, production: list[Any], body: Any, status: int) -> None:
    check_same_outcome(instrumented, production, Reply(status=status, json=body),
                       lambda c: c.chat.completions.create(model="gpt-5.5", messages=MESSAGES))


@FUZZ
@given(data=st.data())
def test_broken_chat_streams_reach_the_caller_as_the_client_gives_them(
        instrumented: Any, production: list[Any], data: st.DataObject) -> None:
    chunks = chat_chunks(usage=data.draw(USAGES), model=data.draw(MODELS),
                         tool_calls=data.draw(st.sampled_from(
                             [(), (tool_call("call_1", "read_file", {"path": "a.py"}),)])))
    raw = data.draw(broken_sse(chunks, sse_data))
    check_same_outcome(instrumented, production, Reply(sse=raw),
                       lambda c: list(c.chat.completions.create(model="gpt-5.5", messages=MESSAGES, stream=True,
                                                                stream_options={"include_usage": True})))


@FUZZ
@given(data=st.data())
def test_streams_dropped_half_read_end_their_span(instrumented: Any, production: list[Any],
                                                 data: st.DataObject) -> None:
    chunks = chat_chunks(usage=ChatUsage(20, 5))
    raw = data.draw(broken_sse(chunks, sse_data))
    take = data.draw(st.integers(0, 4))

    def first_chunks(client: Any) -> Any:
        stream = client.chat.completions.create(model="gpt-5.5", messages=MESSAGES, stream=True)
        out = []
        with stream:
            for chunk in stream:
                out.append(chunk)
                if len(out) >= take:
                    break
        return out

    check_same_outcome(instrumented, production, Reply(sse=raw), first_chunks)


@has_responses
@FUZZ
@given(body=st.builds(lambda m, u: response_object(model=m, with_usage=u), MODELS, st.booleans())
       .flatmap(mutated))
def test_odd_responses_reach_the_caller_as_the_client_gives_them(
        instrumented: Any, production: list[Any], body: Any) -> None:
    check_same_outcome(instrumented, production, Reply(json=body),
                       lambda c: c.responses.create(model="gpt-5.5", input="hi"))


@has_responses
@FUZZ
@given(data=st.data())
def test_broken_response_event_streams_reach_the_caller_as_the_client_gives_them(
        instrumented: Any, production: list[Any], data: st.DataObject) -> None:
    events = response_events(response_object(model=data.draw(MODELS), with_usage=data.draw(st.booleans())),
                             complete=data.draw(st.booleans()))

    def framing(items: list[Any]) -> bytes:
        return sse_events([(str(item.get("type", "x")) if isinstance(item, dict) else "x", item)
                           for item in items])

    raw = data.draw(broken_sse([e for _, e in events], framing))
    check_same_outcome(instrumented, production, Reply(sse=raw),
                       lambda c: list(c.responses.create(model="gpt-5.5", input="hi", stream=True)))


CLAUDE_USAGES = st.sampled_from([ClaudeUsage(25, 10), ClaudeUsage(0, 0), None,
                                 ClaudeUsage(100, 5, cache_read_input_tokens=50, cache_creation_input_tokens=20,
                                             ephemeral_5m=5, ephemeral_1h=15)])
CLAUDE_MODELS = st.sampled_from(["claude-sonnet-4-6", "claude-unknown-9", ""])


@has_anthropic
@FUZZ
@given(body=st.builds(lambda m, u, tools: claude_message(model=m, usage=u, tool_uses=tools), CLAUDE_MODELS,
                      CLAUDE_USAGES, st.sampled_from([(), (("toolu_1", "read_file", {"path": "a.py"}),)]))
       .flatmap(mutated), status=st.sampled_from([200, 200, 200, 400, 529]))
def test_odd_anthropic_messages_reach_the_caller_as_the_client_gives_them(
        instrumented: Any, production: list[Any], body: Any, status: int) -> None:
    check_same_outcome(instrumented, production, Reply(status=status, json=body),
                       lambda c: c.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES),
                       sdk="anthropic")


@has_anthropic
@FUZZ
@given(data=st.data())
def test_broken_anthropic_streams_reach_the_caller_as_the_client_gives_them(
        instrumented: Any, production: list[Any], data: st.DataObject) -> None:
    message = claude_message(model=data.draw(CLAUDE_MODELS), usage=data.draw(CLAUDE_USAGES),
                             tool_uses=data.draw(st.sampled_from([(), (("toolu_1", "grep", {"q": "x"}),)])))
    events = claude_events(message, complete=data.draw(st.booleans()))

    def framing(items: list[Any]) -> bytes:
        return sse_events([(str(item.get("type", "x")) if isinstance(item, dict) else "x", item)
                           for item in items])

    raw = data.draw(broken_sse([e for _, e in events], framing))
    check_same_outcome(instrumented, production, Reply(sse=raw),
                       lambda c: list(c.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                                        messages=MESSAGES, stream=True)),
                       sdk="anthropic")


def test_the_oracle_sees_a_difference_when_there_is_one(instrumented: Any, production: list[Any]) -> None:
    """A caller that gets something else when instrumented fails the check: the fuzz tests can fail."""
    calls: list[int] = []

    def request(client: Any) -> Any:
        calls.append(1)
        reply = client.chat.completions.create(model="gpt-5.5", messages=MESSAGES)
        return reply if len(calls) == 1 else reply.model_copy(update={"id": "something else"})

    with pytest.raises(AssertionError):
        check_same_outcome(instrumented, production, Reply(json=chat_completion()), request)
    assert len(calls) == 2

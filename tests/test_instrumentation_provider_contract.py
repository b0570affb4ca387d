"""The provider contract (``instrumentation/_provider.py``): a provider declared in a few lines gets the whole lifecycle.

A fake SDK module (a ``Chat`` class with sync, async and streaming methods that
record what they were asked to send) is patched by a ``Provider`` declared
here the way a provider module declares one: the span, the budget check before
the request, pricing, errors, and stream ends (exhausted, early break and drop)
all come from the shared lifecycle, none from this file.

gpt-4o-mini list prices: $0.15 input, $0.60 output per million tokens, so
1,000 input + 100 output tokens cost 150 + 60 = 210 per million = $0.00021.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import runtrace
from runtrace import _state
from runtrace import semconv as sc
from runtrace.instrumentation._llm import Request, ResponseData, Usage, assistant_message
from runtrace.instrumentation._provider import Method, Provider
from runtrace.instrumentation._read import as_str, get

MODULE = "runtrace_test_fake_sdk"
COST = 0.00021  # 1,000 x 0.15 + 100 x 0.60 per million


class SDKError(Exception):
    status_code = 503


class Chat:
    """A client whose methods record each request they send."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    def _send(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.sent.append(kwargs)
        if self.fail:
            raise SDKError("unavailable")
        return {"id": f"r{len(self.sent)}", "model": kwargs["model"], "text": "hello",
                "usage": {"in": 1000, "out": 100}}

    def complete(self, **kwargs: Any) -> dict[str, Any]:
        return self._send(kwargs)

    async def complete_async(self, **kwargs: Any) -> dict[str, Any]:
        return self._send(kwargs)

    def stream(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        body = self._send(kwargs)
        return iter([{"text": "hel"}, {"text": "lo"}, {"usage": body["usage"], "id": body["id"]}])

    async def stream_async(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        body = self._send(kwargs)

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            for chunk in ({"text": "hel"}, {"text": "lo"}, {"usage": body["usage"], "id": body["id"]}):
                yield chunk
        return chunks()


# --- the whole provider declaration ---------------------------------------------------

def read_request(instance: Any, kwargs: dict[str, Any]) -> Request:
    return Request(provider=sc.PROVIDER_OPENAI, operation=sc.OP_CHAT, model=as_str(kwargs.get("model")),
                   attributes={}, prompt=[("user", m) for m in kwargs.get("messages", ())])


def usage(raw: Any) -> Usage | None:
    return Usage(input_tokens=raw["in"], output_tokens=raw["out"]) if raw else None


def read_response(body: Any) -> ResponseData:
    data = ResponseData(response_id=get(body, "id"), response_model=get(body, "model"), usage=usage(get(body, "usage")))
    return assistant_message(data, get(body, "text") or "", "stop")


class Chunks:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.data = ResponseData()

    def add(self, chunk: Any) -> None:
        self.texts.append(chunk.get("text", ""))
        self.data.usage = usage(chunk.get("usage")) or self.data.usage
        self.data.response_id = chunk.get("id") or self.data.response_id

    def result(self) -> ResponseData:
        return assistant_message(self.data, "".join(self.texts), None)


PROVIDER = Provider(
    name="fake", tracer="tests.fake_provider", modules=(MODULE,),
    methods=(Method("Chat.complete"), Method("Chat.complete_async", is_async=True),
             Method("Chat.stream", stream=True), Method("Chat.stream_async", is_async=True, stream=True)),
    request=read_request, response=read_response, accumulator=Chunks,
)

# ---------------------------------------------------------------------------------------

MESSAGES = ["what is 2+2?"]


@pytest.fixture()
def patched(instrumented: Any) -> Iterator[Any]:
    module = types.ModuleType(MODULE)
    module.Chat = Chat  # type: ignore[attr-defined]
    sys.modules[MODULE] = module
    originals = dict(vars(Chat))
    integration = PROVIDER.integration()
    assert integration.instrument() is True
    installed = _state.current()
    assert installed is not None
    installed.patched.append(PROVIDER.name)  # what instrument()'s import hook records after patching
    try:
        yield instrumented
    finally:
        installed.patched.remove(PROVIDER.name)
        integration.uninstrument()
        del sys.modules[MODULE]
        for name in ("complete", "complete_async", "stream", "stream_async"):
            assert vars(Chat)[name] is originals[name]  # the very objects put back


def _one(spans: Any) -> Any:
    ours = [s for s in spans if s.instrumentation_scope.name == "tests.fake_provider"]
    assert len(ours) == 1, [s.name for s in spans]
    return ours[0]


def test_a_declared_provider_gets_a_priced_span_sync_and_async(patched: Any) -> None:
    chat = Chat()
    assert chat.complete(model="gpt-4o-mini", messages=MESSAGES)["text"] == "hello"
    assert asyncio.run(chat.complete_async(model="gpt-4o-mini", messages=MESSAGES))["id"] == "r2"
    spans = [s for s in patched.llm_spans() if s.instrumentation_scope.name == "tests.fake_provider"]
    assert [s.name for s in spans] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    for span, response_id in zip(spans, ("r1", "r2"), strict=True):
        attrs = span.attributes
        assert (attrs[sc.GEN_AI_RESPONSE_ID], attrs[sc.GEN_AI_USAGE_INPUT_TOKENS],
                attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (response_id, 1000, 100)
        assert attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
        assert attrs[sc.COST_USD] == pytest.approx(COST, abs=1e-12)


def test_streams_end_on_exhaustion_and_on_an_early_break(patched: Any) -> None:
    chat = Chat()
    assert [c.get("text") for c in chat.stream(model="gpt-4o-mini", messages=MESSAGES)] == ["hel", "lo", None]
    span = _one(patched.spans())
    assert (span.attributes[sc.STREAM_ENDED_BY], span.attributes[sc.GEN_AI_REQUEST_STREAM]) == ("exhausted", True)
    assert span.attributes[sc.COST_USD] == pytest.approx(COST, abs=1e-12)
    patched.exporter.clear()

    stream = chat.stream(model="gpt-4o-mini", messages=MESSAGES)
    for _ in stream:
        break
    del stream
    gc.collect()
    span = _one(patched.spans())
    assert span.attributes[sc.STREAM_ENDED_BY] == "abandoned"
    assert span.attributes[sc.USAGE_MISSING] is True  # the usage chunk never came: unpriced, not $0
    assert sc.COST_USD not in span.attributes


def test_an_async_stream_is_read_through_the_async_proxy(patched: Any) -> None:
    async def read() -> list[Any]:
        stream = await Chat().stream_async(model="gpt-4o-mini", messages=MESSAGES)
        return [chunk async for chunk in stream]

    assert len(asyncio.run(read())) == 3
    span = _one(patched.spans())
    assert (span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS], span.attributes[sc.STREAM_ENDED_BY]) == (1000, "exhausted")


def test_an_sdk_error_reaches_the_caller_unchanged_and_fails_the_span(patched: Any) -> None:
    with pytest.raises(SDKError, match="unavailable"):
        Chat(fail=True).complete(model="gpt-4o-mini", messages=MESSAGES)
    span = _one(patched.spans())
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes[sc.ERROR_TYPE], span.attributes[sc.HTTP_RESPONSE_STATUS_CODE]) == ("SDKError", 503)


def test_the_budget_stops_a_call_before_the_sdk_sends_it(patched: Any) -> None:
    chat = Chat()
    with pytest.raises(runtrace.BudgetExceeded), runtrace.run("capped", budget=runtrace.Budget(max_llm_calls=1)):
        chat.complete(model="gpt-4o-mini", messages=MESSAGES)
        asyncio.run(chat.complete_async(model="gpt-4o-mini", messages=MESSAGES))
    assert len(chat.sent) == 1  # the second request was never sent


def test_a_malformed_response_is_returned_untouched_and_counted_unpriced(patched: Any) -> None:
    chat = Chat()
    chat._send = lambda kwargs: {"weird": object()}  # type: ignore[method-assign]
    result = chat.complete(model="gpt-4o-mini", messages=MESSAGES)
    assert list(result) == ["weird"]
    span = _one(patched.spans())
    assert (span.attributes[sc.USAGE_MISSING], span.attributes[sc.COST_SOURCE]) == (True, "unknown")

"""Proxies that end an LLM span when the caller is done with a stream or a raw response.

A streamed call's span cannot end when ``create()`` returns: the usage arrives
in the last chunk. The proxies here stand in for the SDK's object (``isinstance``
still sees the SDK type, every other attribute falls through to it) and end the
span exactly once, whichever comes first:

- the stream is exhausted (``ended_by="exhausted"``),
- reading it raises (``"error"``, status ERROR, what arrived so far is kept),
- ``close()`` / ``aclose()`` or the end of a ``with`` block (``"closed"``),
- the caller drops it, e.g. after breaking out of the loop (``"abandoned"``,
  from ``__del__``): the most common way peers lose a streamed call's cost.

Reading the stream never changes the caller's current span: another
instrumentation under runtrace's (openai-v2's ``opentelemetry.util.genai``)
attaches its span's context while ``create()`` runs, inside runtrace's span,
and detaches it when the stream ends, which puts back *runtrace's* (ended)
span as the current one. Every later call in the thread then nested under it,
and the store's innermost rule uncounted the streamed call (4 calls for 5
requests). The proxies put the caller's context back when that happens.

Whatever was received until then is recorded: partial text, tool calls, and
usage only if the usage chunk arrived (otherwise ``runtrace.usage.missing``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import wrapt
from opentelemetry import context, trace

from .. import _internal, semconv
from .._internal import fail_open
from ._llm import LLMCall, ResponseData

if TYPE_CHECKING:
    _Proxy = wrapt.ObjectProxy[Any]
else:
    _Proxy = wrapt.ObjectProxy


class Accumulator(Protocol):
    """Builds the response from a provider's chunks, one at a time."""

    def add(self, chunk: Any) -> None: ...

    def result(self) -> ResponseData: ...


class _StreamState:
    """Shared by the sync and async proxies: feed chunks, end the span once."""

    __slots__ = ("call", "acc")

    def __init__(self, call: LLMCall, acc: Accumulator) -> None:
        self.call = call
        self.acc = acc

    def _partial(self) -> ResponseData | None:
        try:  # fail_open, written out: every stream ends through here
            return self.acc.result()
        except Exception as exc:  # noqa: BLE001 - the span ends with what is known
            _internal.log_internal_error("stream: result", exc)
            return None

    def end(self, ended_by: str) -> None:
        if not self.call.ended:
            self.call.finish(self._partial(), ended_by=ended_by)

    def error(self, exc: BaseException) -> None:
        if not self.call.ended:
            self.call.fail(exc, self._partial() or ResponseData(), ended_by=semconv.STREAM_ENDED_ERROR)

    def keep_context(self, before: context.Context) -> None:
        """Put ``before`` back if reading the wrapped stream left runtrace's own span current.

        Only that case: it is the leak of an instrumentation under runtrace's that
        detached, when its stream ended, the context it attached inside runtrace's
        span. Any other change the wrapped stream makes is left alone.
        """
        if context.get_current() is not before and trace.get_current_span() is self.call.span:
            context.attach(before)  # no detach: this restores the caller's context, it adds nothing

    def received(self, before: context.Context, chunk: Any) -> Any:
        """A chunk the caller is about to get: fed to the accumulator."""
        if context.get_current() is not before:
            self.keep_context(before)
        # Written in place, not as calls: this runs for every chunk of every stream (issue 14).
        call = self.call
        if call._first_chunk_s is None:  # only the first chunk asks the clock
            call.first_chunk()
        try:  # fail_open, inlined
            self.acc.add(chunk)
        except Exception as exc:  # noqa: BLE001 - a chunk we cannot read loses attributes, never the chunk
            _internal.log_internal_error("stream: chunk", exc)
        return chunk

    def stopped(self, before: context.Context, exc: BaseException) -> None:
        """Reading the next chunk raised ``exc``: the end of the stream, or an error (re-raised by the caller)."""
        self.keep_context(before)
        if isinstance(exc, (StopIteration, StopAsyncIteration)):
            self.end(semconv.STREAM_ENDED_EXHAUSTED)
        else:
            self.error(exc)

    def closed(self, before: context.Context) -> None:
        self.keep_context(before)
        self.end(semconv.STREAM_ENDED_CLOSED)


def _end_abandoned(state: _StreamState | None) -> None:
    if state is None:
        return
    try:
        state.end(semconv.STREAM_ENDED_ABANDONED)
    except Exception:  # noqa: BLE001, S110 - __del__ may run at interpreter exit; never raise from it
        pass


async def _awaited(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


class StreamProxy(_Proxy):
    """Stands in for a sync SDK stream (openai ``Stream``, anthropic ``Stream``)."""

    def __init__(self, wrapped: Any, call: LLMCall, acc: Accumulator) -> None:
        super().__init__(wrapped)
        self._self_state = _StreamState(call, acc)

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        before = context.get_current()
        try:
            chunk = next(self.__wrapped__)
        except BaseException as exc:
            self._self_state.stopped(before, exc)
            raise
        return self._self_state.received(before, chunk)

    def __enter__(self) -> StreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        before = context.get_current()
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_state.closed(before)

    def close(self) -> Any:
        before = context.get_current()
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.closed(before)

    def __del__(self) -> None:
        _end_abandoned(getattr(self, "_self_state", None))


class AsyncStreamProxy(_Proxy):
    """Stands in for an async SDK stream (openai ``AsyncStream``, anthropic ``AsyncStream``)."""

    def __init__(self, wrapped: Any, call: LLMCall, acc: Accumulator) -> None:
        super().__init__(wrapped)
        self._self_state = _StreamState(call, acc)

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        before = context.get_current()
        try:
            chunk = await self.__wrapped__.__anext__()
        except BaseException as exc:
            self._self_state.stopped(before, exc)
            raise
        return self._self_state.received(before, chunk)

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        before = context.get_current()
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_state.closed(before)

    async def close(self) -> Any:
        return await self._self_close(lambda: self.__wrapped__.close())

    async def aclose(self) -> Any:
        return await self._self_close(lambda: (getattr(self.__wrapped__, "aclose", None) or self.__wrapped__.close)())

    async def _self_close(self, closer: Callable[[], Any]) -> Any:
        before = context.get_current()
        try:
            return await _awaited(closer())
        finally:
            self._self_state.closed(before)

    def __del__(self) -> None:
        _end_abandoned(getattr(self, "_self_state", None))


def wrap_stream(stream: Any, call: LLMCall, acc: Accumulator) -> Any:
    """The proxy for ``stream``; ``stream`` itself if it is not one.

    The call's own side (which wrapper, sync or async, made it) picks the proxy, never
    the result's attributes: another instrumentation's proxy (OpenInference's) defines
    ``__anext__`` around a sync stream too, and a sync stream in the async proxy is never
    read, so its span ended abandoned and unpriced.
    """
    if call.is_async:
        if hasattr(stream, "__anext__") or hasattr(type(stream), "__aiter__"):
            return AsyncStreamProxy(stream, call, acc)
    elif hasattr(stream, "__next__") or hasattr(type(stream), "__iter__"):
        return StreamProxy(stream, call, acc)
    call.finish(None)
    return stream


# --- raw responses (with_raw_response / with_streaming_response) -----------------------

def is_raw_response(obj: Any) -> bool:
    """The SDKs' ``LegacyAPIResponse`` / ``APIResponse``: matched by shape, not private imports."""
    return hasattr(obj, "http_response") and callable(getattr(obj, "parse", None))


def _body_json(raw: Any) -> Any:
    http = raw.http_response
    if not getattr(http, "is_closed", False):
        return None
    content_type = str(http.headers.get("content-type", ""))
    if "json" not in content_type:
        return None
    return http.json()


class RawResponseProxy(_Proxy):
    """Stands in for a raw response whose body the caller has yet to read.

    ``parse()`` routes on what the SDK returns: a model ends the span with its
    data; a stream comes back as a :class:`StreamProxy` that ends it later.
    ``read()``/``json()``/``text()`` end it from the body; ``close()`` (the end
    of a ``with_streaming_response`` block) ends it with whatever is known; a
    raw response dropped unread ends it as abandoned.
    """

    def __init__(self, wrapped: Any, call: LLMCall, from_body: Callable[[Any], ResponseData],
                 stream_acc: Callable[[], Accumulator]) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_from_body = from_body
        self._self_stream_acc = stream_acc
        self._self_stream: tuple[Any, Any] | None = None  # (the SDK's stream, our proxy of it)

    def _self_dispatch(self, parsed: Any) -> Any:
        memo = self._self_stream
        if memo is not None and memo[0] is parsed:
            return memo[1]
        call: LLMCall = self._self_call
        if call.ended:
            return parsed
        if hasattr(parsed, "__next__") or hasattr(parsed, "__anext__"):
            proxy = wrap_stream(parsed, call, self._self_stream_acc())
            self._self_stream = (parsed, proxy)
            return proxy
        data = None
        with fail_open("raw response: parsed"):
            data = self._self_from_body(parsed)
        call.finish(data)
        return parsed

    def _self_from_read_body(self) -> None:
        call: LLMCall = self._self_call
        if call.ended or self._self_stream is not None:
            return
        data = None
        with fail_open("raw response: body"):
            body = _body_json(self.__wrapped__)
            if body is not None:
                data = self._self_from_body(body)
        if data is not None:
            call.finish(data)

    def _self_closed(self) -> None:
        memo = self._self_stream
        if memo is not None:
            memo[1]._self_state.end(semconv.STREAM_ENDED_CLOSED)
            return
        self._self_from_read_body()
        call: LLMCall = self._self_call
        if not call.ended:
            call.finish(None, ended_by=semconv.STREAM_ENDED_CLOSED)

    def _self_after(self, result: Any, then: Callable[[], None], transform: Callable[[Any], Any] | None = None
                    ) -> Any:
        if inspect.isawaitable(result):
            async def finish() -> Any:
                value = await result
                then()
                return transform(value) if transform else value
            return finish()
        then()
        return transform(result) if transform else result

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        result = self.__wrapped__.parse(*args, **kwargs)
        if args or kwargs:  # parse(to=...) asks for the caller's own type: leave it alone
            return self._self_after(result, self._self_from_read_body)
        if inspect.isawaitable(result):
            async def dispatch() -> Any:
                return self._self_dispatch(await result)
            return dispatch()
        return self._self_dispatch(result)

    def __del__(self) -> None:
        try:
            call = getattr(self, "_self_call", None)
            if call is not None and self._self_stream is None and not call.ended:
                call.finish(None, ended_by=semconv.STREAM_ENDED_ABANDONED)
        except Exception:  # noqa: BLE001, S110 - never raise from __del__
            pass


class _ReadableRawResponseProxy(RawResponseProxy):
    """For ``APIResponse`` (``with_streaming_response``), whose body is read by methods.

    ``LegacyAPIResponse`` exposes ``text``/``content`` as properties instead, so
    it gets the plain proxy: shadowing them with methods would change its API.
    """

    def read(self) -> Any:
        return self._self_after(self.__wrapped__.read(), self._self_from_read_body)

    def json(self) -> Any:
        return self._self_after(self.__wrapped__.json(), self._self_from_read_body)

    def text(self) -> Any:
        return self._self_after(self.__wrapped__.text(), self._self_from_read_body)

    def close(self) -> Any:
        return self._self_after(self.__wrapped__.close(), self._self_closed)


def wrap_raw_response(raw: Any, call: LLMCall, from_body: Callable[[Any], ResponseData],
                      stream_acc: Callable[[], Accumulator]) -> Any:
    """End the span now when the body was already read, else hand back a proxy that ends it later."""
    body_read = bool(getattr(raw.http_response, "is_closed", False))
    if body_read and not call.request.stream:
        data = None
        with fail_open("raw response: body"):
            body = _body_json(raw)
            if body is not None:
                data = from_body(body)
        call.finish(data)
        return raw
    methods = all(inspect.isfunction(getattr(type(raw), name, None)) for name in ("read", "json", "text", "close"))
    cls = _ReadableRawResponseProxy if methods else RawResponseProxy
    return cls(raw, call, from_body, stream_acc)

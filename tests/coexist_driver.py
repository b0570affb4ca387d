"""Run runtrace next to another GenAI instrumentation, in a process of its own.

``python coexist_driver.py PEER ORDER STORE`` sets up PEER (one of ``PEERS``)
and ``runtrace.instrument()`` in ORDER (``peer-first``: the peer patches
first, so runtrace's span is the outer one; ``runtrace-first``: the other way
round), sends a fixed set of requests to a fake OpenAI/Anthropic endpoint
inside one run, and prints one JSON line: the requests the endpoint received,
the stored run, and each stored span's scope, kind and ``runtrace.duplicate_of``.

A process of its own because OpenTelemetry allows one global TracerProvider per
process, Logfire insists on installing its own, and most instrumentors cannot
be fully undone. tests/test_coexist.py runs it under a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from llm_fakes import (  # noqa: E402
    ChatUsage,
    ClaudeUsage,
    FakeLLM,
    chat_chunks,
    chat_completion,
    chat_sse_reply,
    claude_events,
    claude_message,
    events_reply,
    json_reply,
)

USER = [{"role": "user", "content": "What is 2+2?"}]


# --- the peers: each set-up returns a function that instruments the peer ---------------

def _openai_v2() -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument()


def _openllmetry() -> None:
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument()
    AnthropicInstrumentor().instrument()


def _openinference() -> None:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument()


def _openlit() -> None:
    import openlit

    openlit.init(disable_metrics=True, collect_gpu_stats=False)


def _logfire() -> None:
    import logfire

    logfire.instrument_openai()
    logfire.instrument_anthropic()


PEERS: dict[str, Any] = {
    "openai-v2": _openai_v2,
    "openllmetry": _openllmetry,
    "openinference": _openinference,
    "openlit": _openlit,
    "logfire": _logfire,
    "pydantic-ai": lambda: None,  # the agent's own instrumentation, switched on per agent
    "none": lambda: None,  # runtrace alone
}


# --- the requests -----------------------------------------------------------------------

def openai_requests(fake: FakeLLM) -> None:
    """5 requests: sync, sync stream, async, async stream, sync again: 180 in, 26 out, $0.00168."""
    client = fake.openai()
    client.chat.completions.create(model="gpt-5.5", messages=USER)
    stream = client.chat.completions.create(model="gpt-5.5", messages=USER, stream=True,
                                            stream_options={"include_usage": True})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello!", text

    async def both() -> None:
        aclient = fake.openai(async_client=True)
        await aclient.chat.completions.create(model="gpt-5.5", messages=USER)
        astream = await aclient.chat.completions.create(model="gpt-5.5", messages=USER, stream=True,
                                                        stream_options={"include_usage": True})
        async for _chunk in astream:
            pass

    asyncio.run(both())
    client.chat.completions.create(model="gpt-5.5", messages=USER)


def openai_fake() -> FakeLLM:
    return FakeLLM([
        json_reply(chat_completion(usage=ChatUsage(20, 5))),
        chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3))),
        json_reply(chat_completion(usage=ChatUsage(20, 5))),
        chat_sse_reply(chat_chunks(usage=ChatUsage(20, 3))),
        json_reply(chat_completion(usage=ChatUsage(100, 10))),
    ])


def anthropic_requests(fake: FakeLLM) -> None:
    """4 requests: create, stream=True, messages.stream(), beta.messages.stream(): 4 x (25 in, 10 out)."""
    client = fake.anthropic()
    msg = [{"role": "user", "content": "Hi"}]
    client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=msg)
    for _event in client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=msg, stream=True):
        pass
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=msg) as stream:
        assert stream.get_final_text() == "Hello from Claude."
    with client.beta.messages.stream(model="claude-sonnet-4-6", max_tokens=64, messages=msg) as stream:
        assert stream.get_final_text() == "Hello from Claude."


def anthropic_fake() -> FakeLLM:
    from llm_fakes import http_module

    message = claude_message(usage=ClaudeUsage(25, 10))
    return FakeLLM([json_reply(message)] + [events_reply(claude_events(message)) for _ in range(3)],
                   http=http_module("anthropic"))


def pydantic_ai_requests(fake: FakeLLM) -> None:
    """2 agent runs of 1 request each (20 in, 5 out) through pydantic-ai's instrumented agent."""
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("gpt-5.5", provider=OpenAIProvider(openai_client=fake.openai(async_client=True)))
    Agent.instrument_all(True)  # pydantic-ai's own spans, on the global provider
    agent = Agent(model)
    for _ in range(2):
        assert agent.run_sync("What is 2+2?").output == "Hello!"


def stored(store: str, run_id: str) -> dict[str, Any]:
    from runtrace.store import queries
    from runtrace.store.db import Store

    db = Store.open(store)
    try:
        run = queries.get_run(db, run_id)
    finally:
        db.close()
    conn = sqlite3.connect(store)
    try:
        rows = conn.execute("SELECT scope_name, kind, attributes FROM spans WHERE kind != 'run' "
                            "ORDER BY start_ns").fetchall()
    finally:
        conn.close()
    spans = [{"scope": scope, "kind": kind, "duplicate_of": json.loads(attrs).get("runtrace.duplicate_of")}
             for scope, kind, attrs in rows]
    return {"run": run, "spans": spans}


def main(peer: str, order: str, store: str, sdk: str) -> None:
    import runtrace

    if peer == "logfire":
        import logfire

        # Logfire installs its provider first, as in an app that configured it at start-up.
        logfire.configure(send_to_logfire=False, console=False, metrics=False)
    if order == "peer-first":
        PEERS[peer]()
    runtrace.instrument(service_name="coexist", store=store)
    import anthropic  # noqa: F401
    import openai  # noqa: F401  (patched now by the import hook, if not already)
    if order == "runtrace-first":
        PEERS[peer]()
    if sdk == "anthropic":
        fake, send = anthropic_fake(), anthropic_requests
    elif sdk == "pydantic-ai":
        fake = FakeLLM(default=json_reply(chat_completion(usage=ChatUsage(20, 5))))
        send = pydantic_ai_requests
    else:
        fake, send = openai_fake(), openai_requests
    with runtrace.run(f"{peer} {order}") as run:
        send(fake)
    runtrace.flush()
    print(json.dumps({"requests": len(fake.requests), "run_id": run.id, **stored(store, run.id)}))


if __name__ == "__main__":
    os.environ.setdefault("TRACELOOP_TELEMETRY", "false")
    os.environ.setdefault("OTEL_SDK_DISABLED", "false")
    main(*sys.argv[1:5])

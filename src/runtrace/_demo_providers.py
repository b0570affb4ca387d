"""The demo's multi-provider run: one agent asking OpenAI, Anthropic and Gemini in one run.

Each client is the real SDK with a mock HTTP transport serving a fixed reply
with fixed usage, so the run's dollars can be checked by hand (tests/test_demo.py).
anthropic and google-genai are optional extras: without them the run is skipped
with a line saying why, and the rest of the demo is unchanged. (A DeepSeek
``base_url`` client is not included: recognising providers by ``base_url`` is
separate work.)
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from typing import Any

from . import runs
from ._fake_llm import FakeLLM, Reply, client_for

NAME = "compare providers on a review"
CLAUDE = "claude-sonnet-4-6"
GEMINI = "gemini-2.5-flash"
# Fixed usage of the two scripted replies (the OpenAI call's comes from _fake_llm's rules).
CLAUDE_USAGE = {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0}
GEMINI_USAGE = {"promptTokenCount": 1500, "cachedContentTokenCount": 1024, "candidatesTokenCount": 180,
                "thoughtsTokenCount": 64, "totalTokenCount": 1744}


def missing_clients() -> list[str]:
    """The optional clients this run needs that are not installed."""
    return [pkg for pkg, module in (("anthropic", "anthropic"), ("google-genai", "google.genai"))
            if importlib.util.find_spec(module.split(".")[0]) is None
            or (module == "google.genai" and importlib.util.find_spec(module) is None)]


def _anthropic_client() -> Any:
    import anthropic

    base = importlib.import_module("anthropic._base_client")
    http: Any
    if "httpx2" in vars(base):
        import httpx2 as http
    else:
        import httpx as http

    def handle(request: Any) -> Any:
        body = json.loads(request.content)
        return http.Response(200, json={
            "id": "msg_demo0001", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": "The retry wrapper swallows KeyboardInterrupt."}],
            "stop_reason": "end_turn", "stop_sequence": None, "usage": CLAUDE_USAGE})

    return anthropic.Anthropic(api_key="sk-ant-demo", base_url="https://claude.demo.invalid", max_retries=0,
                               http_client=http.Client(transport=http.MockTransport(handle)))


def _gemini_client() -> Any:
    import httpx
    from google import genai

    def handle(request: Any) -> Any:
        return httpx.Response(200, json={
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Agreed; also log the attempt."}]},
                            "finishReason": "STOP"}],
            "usageMetadata": GEMINI_USAGE, "modelVersion": GEMINI, "responseId": "gemini-demo-1"})

    options: Any = {"base_url": "https://gemini.demo.invalid",
                    "httpx_client": httpx.Client(transport=httpx.MockTransport(handle))}
    return genai.Client(api_key="demo", http_options=options)


def run_multi_provider(echo: Callable[[str], None] | None = None) -> str | None:
    """One run, three providers; None (and a line saying why) when a client is missing."""
    missing = missing_clients()
    if missing:
        if echo:
            echo(f"run: {NAME} skipped: install {', '.join(missing)} (pip install 'runtrace[anthropic,gemini]')")
        return None
    if echo:
        echo(f"run: {NAME} (review/alice, gpt-5-mini + {CLAUDE} + {GEMINI})")
    task = "Review src/billing/retry.py for error handling."
    openai_client = client_for(FakeLLM([Reply(text="Looks fine, but retries do not back off.")]))
    claude, gemini = _anthropic_client(), _gemini_client()
    with runs.run(NAME, project="review", owner="alice", metadata={"agent": "demo-reviewer"}) as run:
        openai_client.chat.completions.create(model="gpt-5-mini", messages=[{"role": "user", "content": task}])
        claude.messages.create(model=CLAUDE, max_tokens=512, messages=[{"role": "user", "content": task}])
        gemini.models.generate_content(model=GEMINI, contents=task)
        run.accept(by="demo-reviewer")
    return run.id

"""The demo's multi-provider run: one agent asking five providers in one run.

OpenAI, Anthropic, Gemini, DeepSeek (an openai client pointed at
``https://api.deepseek.com``, recognised by its ``base_url``), LiteLLM (through
an openai client it is handed: one span, LiteLLM's) and AWS Bedrock
(``converse`` on a boto3 ``bedrock-runtime`` client answered by botocore's
``Stubber``, so nothing is signed or sent). Each client is the real SDK with a
mock transport serving a fixed reply with fixed usage, so the run's dollars can
be checked by hand (tests/test_demo.py). anthropic, google-genai, litellm and
boto3 are optional extras: without them the run is skipped with a line saying
why, and the rest of the demo is unchanged.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from typing import Any

from . import runs
from ._fake_llm import FakeLLM, Reply, client_for

NAME = "compare providers on a review"
CLAUDE = "claude-sonnet-4-6"
GEMINI = "gemini-2.5-flash"
DEEPSEEK = "deepseek-chat"
LITELLM_MODEL = "gpt-4o-mini"
BEDROCK = "anthropic.claude-3-5-haiku-20241022-v1:0"
# Fixed usage of the two scripted replies (the OpenAI call's comes from _fake_llm's rules).
CLAUDE_USAGE = {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0}
GEMINI_USAGE = {"promptTokenCount": 1500, "cachedContentTokenCount": 1024, "candidatesTokenCount": 180,
                "thoughtsTokenCount": 64, "totalTokenCount": 1744}
LITELLM_USAGE = {"prompt_tokens": 2000, "completion_tokens": 150, "total_tokens": 2150}
BEDROCK_USAGE = {"inputTokens": 800, "outputTokens": 120, "totalTokens": 2968, "cacheReadInputTokens": 2048,
                 "cacheWriteInputTokens": 0}
CLIENTS = (("anthropic", "anthropic"), ("google-genai", "google.genai"), ("litellm", "litellm"),
           ("boto3", "boto3"))
EXTRAS = "anthropic,gemini,litellm,bedrock"


def missing_clients() -> list[str]:
    """The optional clients this run needs that are not installed."""
    return [pkg for pkg, module in CLIENTS
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


def _deepseek_client() -> Any:
    """An openai client on DeepSeek's URL; its HTTP goes to the demo's fake endpoint."""
    import openai

    from ._fake_llm import http_module

    http = http_module()
    fake = FakeLLM([Reply(text="Wrap the retry in a backoff helper; keep the interrupt.")])
    return openai.OpenAI(api_key="sk-deepseek-demo", base_url="https://api.deepseek.com", max_retries=0,
                         http_client=http.Client(transport=http.MockTransport(fake.handler(http))))


def _litellm_call(task: str) -> None:
    """``litellm.completion`` handed an openai client over a mock transport (one span: LiteLLM's)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM stays offline
    import litellm
    import openai

    from ._fake_llm import http_module

    http = http_module()

    def handle(request: Any) -> Any:
        body = json.loads(request.content)
        return http.Response(200, json={
            "id": "chatcmpl-litellm-demo", "object": "chat.completion", "created": 1_790_000_000,
            "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": "Second opinion: add a jittered backoff."}}],
            "usage": LITELLM_USAGE})

    client = openai.OpenAI(api_key="sk-litellm-demo", base_url="https://api.openai.com/v1", max_retries=0,
                           http_client=http.Client(transport=http.MockTransport(handle)))
    litellm.completion(model=LITELLM_MODEL, messages=[{"role": "user", "content": task}], client=client,
                       api_key="sk-litellm-demo")


def _bedrock_call(task: str) -> None:
    """``converse`` on a real boto3 client, answered by botocore's Stubber (nothing is signed or sent)."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="demo",
                          aws_secret_access_key="demo")
    messages = [{"role": "user", "content": [{"text": task}]}]
    with Stubber(client) as stub:
        stub.add_response("converse", {
            "output": {"message": {"role": "assistant", "content": [{"text": "Approve once backoff lands."}]}},
            "stopReason": "end_turn", "usage": BEDROCK_USAGE, "metrics": {"latencyMs": 420}},
            {"modelId": BEDROCK, "messages": messages})
        client.converse(modelId=BEDROCK, messages=messages)


def run_multi_provider(echo: Callable[[str], None] | None = None) -> str | None:
    """One run, five providers; None (and a line saying why) when a client is missing."""
    missing = missing_clients()
    if missing:
        if echo:
            echo(f"run: {NAME} skipped: install {', '.join(missing)} (pip install -e '.[{EXTRAS}]' in a checkout)")
        return None
    if echo:
        echo(f"run: {NAME} (review/alice, gpt-5-mini + {CLAUDE} + {GEMINI} + {DEEPSEEK} + LiteLLM {LITELLM_MODEL}"
             f" + Bedrock {BEDROCK})")
    task = "Review src/billing/retry.py for error handling."
    openai_client = client_for(FakeLLM([Reply(text="Looks fine, but retries do not back off.")]))
    claude, gemini, deepseek = _anthropic_client(), _gemini_client(), _deepseek_client()
    with runs.run(NAME, project="review", owner="alice", metadata={"agent": "demo-reviewer"}) as run:
        openai_client.chat.completions.create(model="gpt-5-mini", messages=[{"role": "user", "content": task}])
        claude.messages.create(model=CLAUDE, max_tokens=512, messages=[{"role": "user", "content": task}])
        gemini.models.generate_content(model=GEMINI, contents=task)
        deepseek.chat.completions.create(model=DEEPSEEK, messages=[{"role": "user", "content": task}])
        _litellm_call(task)
        _bedrock_call(task)
        run.accept(by="demo-reviewer")
    return run.id

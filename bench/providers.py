"""µs runtrace adds to one call of each newer provider client, against a mock transport.

    python bench/providers.py [--quick] [--venv /work/venv-bench]

Gemini (``google-genai``, httpx ``MockTransport``), Mistral (``mistralai``,
httpx ``MockTransport``), Bedrock (``boto3`` ``converse``, a ``before-send``
handler answering with canned bytes: botocore's own transport hook) and LiteLLM
(``completion(mock_response=...)``, LiteLLM's built-in mock). Each provider
runs in a process of its own with ``runtrace.instrument(store=False)`` and the
same ``SimpleSpanProcessor`` into an ``InMemorySpanExporter`` as
``overhead.py``; timed batches inside ``runtrace.run`` alternate with batches
where the integration is switched off (its wrappers then pass straight
through: the bare client plus one wrapt call and a set lookup, well under a
microsecond). After every instrumented batch the spans are counted and their
usage checked, so nothing is fast by not recording.

These rows have no peer to compare with: they are here so that later work
cannot make them slower without the figures saying so.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common  # noqa: E402

PROVIDERS = ("gemini", "mistral", "bedrock", "litellm")
BATCH = 25
INPUT_TOKENS, OUTPUT_TOKENS = 1200, 80
PROMPT = "Fix the flaky test tests/test_billing.py::test_invoice_total. " * 10


def _gemini() -> tuple[str, Callable[[int], Any]]:
    import httpx
    from google import genai

    body = json.dumps({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Done: the test passes now."}]},
                        "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS,
                          "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS},
        "modelVersion": "gemini-2.5-flash", "responseId": "bench"}).encode()
    headers = {"content-type": "application/json"}

    def handle(request: Any) -> Any:
        return httpx.Response(200, content=body, headers=headers)

    client = genai.Client(api_key="bench", http_options={
        "base_url": "https://gemini.bench.invalid", "httpx_client": httpx.Client(transport=httpx.MockTransport(handle))})
    return "gemini", lambda i: client.models.generate_content(model="gemini-2.5-flash", contents=f"{PROMPT} {i}")


def _mistral() -> tuple[str, Callable[[int], Any]]:
    import httpx
    from mistralai.client import Mistral

    body = json.dumps({
        "id": "bench", "object": "chat.completion", "created": 1_790_000_000, "model": "mistral-small-latest",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Done: the test passes now."}}],
        "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                  "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}}).encode()
    headers = {"content-type": "application/json"}

    def handle(request: Any) -> Any:
        return httpx.Response(200, content=body, headers=headers)

    client = Mistral(api_key="bench", server_url="https://mistral.bench.invalid",
                     client=httpx.Client(transport=httpx.MockTransport(handle)))
    return "mistral", lambda i: client.chat.complete(
        model="mistral-small-latest", messages=[{"role": "user", "content": f"{PROMPT} {i}"}])


def _bedrock() -> tuple[str, Callable[[int], Any]]:
    import boto3
    from botocore.awsrequest import AWSResponse

    body = json.dumps({
        "output": {"message": {"role": "assistant", "content": [{"text": "Done: the test passes now."}]}},
        "stopReason": "end_turn", "metrics": {"latencyMs": 10},
        "usage": {"inputTokens": INPUT_TOKENS, "outputTokens": OUTPUT_TOKENS,
                  "totalTokens": INPUT_TOKENS + OUTPUT_TOKENS}}).encode()

    class Raw:
        def stream(self, **_: Any) -> Any:
            yield body

    def send(request: Any, **_: Any) -> Any:
        return AWSResponse(request.url, 200, {"content-type": "application/json"}, Raw())

    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="bench",
                          aws_secret_access_key="bench")  # noqa: S106 - not a secret
    client.meta.events.register("before-send.bedrock-runtime.Converse", send)
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    return "bedrock", lambda i: client.converse(
        modelId=model, messages=[{"role": "user", "content": [{"text": f"{PROMPT} {i}"}]}])


def _litellm() -> tuple[str, Callable[[int], Any]]:
    import litellm

    def call(i: int) -> Any:
        return litellm.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": f"{PROMPT} {i}"}],
                                  mock_response="Done: the test passes now.")
    return "litellm", call


CLIENTS: dict[str, Callable[[], tuple[str, Callable[[int], Any]]]] = {
    "gemini": _gemini, "mistral": _mistral, "bedrock": _bedrock, "litellm": _litellm}


def child(provider: str, batches: int) -> dict[str, Any]:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no fetch of LiteLLM's price map (no network here)
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import runtrace
    from runtrace import _state, semconv
    from runtrace.instrumentation import _wrap

    exporter = InMemorySpanExporter()
    integration, call = CLIENTS[provider]()
    runtrace.instrument(service_name="bench-agent", store=False, span_processors=(SimpleSpanProcessor(exporter),))
    if not _wrap.is_active(integration):
        raise SystemExit(f"{provider}: runtrace did not instrument it")
    installed = _state.current()
    assert installed is not None
    patched = installed.patched  # what _wrap.is_active reads: off-batches take the integration out
    times: dict[bool, list[float]] = {True: [], False: []}
    attrs = 0.0
    counter = 0
    for batch in range(batches + 1):  # batch 0 warms up
        for on in ((True, False) if batch % 2 else (False, True)):
            if on and integration not in patched:
                patched.append(integration)
            elif not on and integration in patched:
                patched.remove(integration)
            gc.collect()
            exporter.clear()
            c0 = time.process_time()
            if on:
                with runtrace.run(f"bench {provider}", project="bench") as run:
                    for _ in range(BATCH):
                        call(counter)
                        counter += 1
                    run.accept()
            else:
                for _ in range(BATCH):
                    call(counter)
                    counter += 1
            cpu = time.process_time() - c0
            spans = [s for s in exporter.get_finished_spans()
                     if (s.attributes or {}).get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_CHAT
                     or (s.attributes or {}).get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_GENERATE_CONTENT]
            if on:
                priced = [s for s in spans if (s.attributes or {}).get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS)
                          and (s.attributes or {}).get(semconv.COST_USD) is not None]
                if len(spans) != BATCH or len(priced) != BATCH:
                    raise AssertionError(f"{provider}: {len(spans)} LLM spans, {len(priced)} with usage and "
                                         f"a cost, for {BATCH} calls")
                attrs = sum(len(s.attributes or {}) for s in spans) / len(spans)
            elif spans:
                raise AssertionError(f"{provider}: {len(spans)} spans with the integration off")
            if batch:
                times[on].append(cpu / BATCH * 1e6)
    on, off = _common.median(times[True]), _common.median(times[False])
    # paired, as overhead.py: each instrumented batch minus the bare batch timed next to it
    paired = _common.median([a - b for a, b in zip(times[True], times[False], strict=True)])
    return {"provider": provider, "us_per_call": on, "baseline_us_per_call": off, "overhead_us": paired,
            "unpaired_overhead_us": on - off, "attributes_per_span": attrs}


def run(*, rounds: int, batches: int, venv: str | None) -> dict[str, Any]:
    python = _common.python_for(venv)
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in PROVIDERS}
    for r in range(rounds):
        for provider in PROVIDERS[r % len(PROVIDERS):] + PROVIDERS[:r % len(PROVIDERS)]:
            out = _common.run_json([python, __file__, "--child", provider, "--batches", str(batches)],
                                   _common.child_env(), timeout=600)
            results[provider].append(out)
            print(f"round {r + 1}/{rounds} {provider:8s} overhead {out['overhead_us']:+7.1f} µs "
                  f"(bare {out['baseline_us_per_call']:.0f})", file=sys.stderr)
    summary = {p: {k: _common.median([o[k] for o in outs])
                   for k in ("us_per_call", "baseline_us_per_call", "overhead_us", "attributes_per_span")}
               for p, outs in results.items()}
    return {"rounds": rounds, "calls_per_process": batches * BATCH, "batch": BATCH, "results": summary}


HEADERS = ["provider", "bare client µs", "overhead µs", "overhead %", "attrs/span"]


def rows(data: dict[str, Any]) -> list[list[str]]:
    return [[p, f"{r['baseline_us_per_call']:.0f}", f"{r['overhead_us']:+.1f}",
             f"{100 * r['overhead_us'] / r['baseline_us_per_call']:+.0f}%", f"{r['attributes_per_span']:.0f}"]
            for p, r in data["results"].items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="overhead of one call of each newer provider client")
    parser.add_argument("--quick", action="store_true", help="1 round of 6 timed pairs of 25 calls")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--venv", default=_common.default_venv())
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batches or 8)))
        return 0
    # --quick: one process a provider with 6 timed pairs (two processes of 4 cost twice the imports)
    rounds = args.rounds or (1 if args.quick else 5)
    batches = args.batches or (2 if _common.tiny() else 6 if args.quick else 20)
    data = run(rounds=rounds, batches=batches, venv=args.venv)
    _common.save("providers", data, quick=args.quick)
    print(_common.table(HEADERS, rows(data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Budgets refuse the call that would cross them (issue 9, item 14), not only the one after.

Every test counts the requests that reached the mock transport and checks the
run's final cost against its limit. The token estimator is pinned to chars/4
so the projected prompt tokens are exact: 4 characters a token.
"""

from __future__ import annotations

import asyncio

import pytest

import runtrace
from llm_fakes import (
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
from runtrace import detect, projection, semconv
from runtrace.budget import Breach
from runtrace.store.queries import get_run

# gpt-5.5 at $5/M input and $30/M output.
THREE_CENTS = chat_completion(model="gpt-5.5", usage=ChatUsage(3000, 500))  # 0.015 + 0.015
PROMPT_3000 = [{"role": "user", "content": "x" * 12_000}]  # 3,000 tokens by chars/4
# The case: calls of $0.012 (1,200 in = $0.006, 200 out = $0.006) on a $0.03 budget
# used to end at $0.036: the third call started with $0.024 spent.
TWELVE_MILLS = chat_completion(model="gpt-5.5", usage=ChatUsage(1200, 200))
PROMPT_1200 = [{"role": "user", "content": "y" * 4_800}]


@pytest.fixture(autouse=True)
def chars_per_4(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "_estimator", detect.CHARS_PER_4)


def run_until_stopped(budget: runtrace.Budget, call, times: int = 6) -> tuple[runtrace.BudgetExceeded, str]:
    with pytest.raises(runtrace.BudgetExceeded) as info, runtrace.run("projected", budget=budget) as run:
        for _ in range(times):
            call()
    return info.value, run.id


def stored(instrumented, run_id: str) -> dict:
    return get_run(instrumented.open_store(), run_id)


def test_the_call_that_would_cross_the_limit_is_not_sent(instrumented) -> None:
    fake = FakeLLM(default=json_reply(TWELVE_MILLS))
    client = fake.openai()
    exc, run_id = run_until_stopped(runtrace.Budget(max_cost_usd=0.03), lambda: client.chat.completions.create(
        model="gpt-5.5", messages=PROMPT_1200))
    assert len(fake.requests) == 2  # 0.024 spent + 0.012 projected > 0.03: the third stays home
    assert (exc.breach.observed, exc.breach.projected) == (pytest.approx(0.024), pytest.approx(0.012))
    assert "would be crossed by the next call" in str(exc)
    row = stored(instrumented, run_id)
    assert (row["llm_calls"], row["outcome"], row["stop_reason"]) == (2, "budget_stopped", "max_cost_usd")
    assert row["cost_usd"] == pytest.approx(0.024, abs=1e-12)
    assert row["cost_usd"] <= 0.03


def test_a_call_that_lands_exactly_on_the_limit_is_allowed(instrumented) -> None:
    fake = FakeLLM(default=json_reply(THREE_CENTS))
    client = fake.openai()
    exc, run_id = run_until_stopped(runtrace.Budget(max_cost_usd=0.06), lambda: client.chat.completions.create(
        model="gpt-5.5", messages=PROMPT_3000))
    assert len(fake.requests) == 2  # 0.03 + 0.03 = 0.06 is not past 0.06; then the limit is reached
    assert (exc.breach.observed, exc.breach.projected) == (pytest.approx(0.06), 0.0)
    assert "reached" in str(exc)
    assert stored(instrumented, run_id)["cost_usd"] == pytest.approx(0.06, abs=1e-12)


def test_max_tokens_is_the_expected_output_even_for_the_first_call(instrumented) -> None:
    fake = FakeLLM(default=json_reply(THREE_CENTS))
    client = fake.openai()

    def ask() -> None:
        client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000, max_completion_tokens=500)

    exc, _ = run_until_stopped(runtrace.Budget(max_cost_usd=0.02), ask)
    assert len(fake.requests) == 0  # 3,000 in + up to 500 out = $0.03 > $0.02: not even the first call
    assert exc.breach.projected == pytest.approx(0.03)
    exc, run_id = run_until_stopped(runtrace.Budget(max_cost_usd=0.04), ask)
    assert len(fake.requests) == 1
    assert stored(instrumented, run_id)["cost_usd"] == pytest.approx(0.03, abs=1e-12)


def test_choices_multiply_the_output_cap(instrumented) -> None:
    fake = FakeLLM(default=json_reply(THREE_CENTS))
    client = fake.openai()
    exc, _ = run_until_stopped(runtrace.Budget(max_cost_usd=0.04), lambda: client.chat.completions.create(
        model="gpt-5.5", messages=PROMPT_3000, max_tokens=500, n=2))
    assert len(fake.requests) == 0  # 0.015 in + 2 x 500 out x $30/M = $0.045 > $0.04
    assert exc.breach.projected == pytest.approx(0.045)


def test_streamed_calls_are_projected_too(instrumented) -> None:
    fake = FakeLLM(default=chat_sse_reply(chat_chunks(model="gpt-5.5", usage=ChatUsage(3000, 500))))
    client = fake.openai()

    def ask() -> None:
        stream = client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000, stream=True,
                                                stream_options={"include_usage": True})
        for _chunk in stream:
            pass

    exc, run_id = run_until_stopped(runtrace.Budget(max_cost_usd=0.05), ask)
    assert len(fake.requests) == 1
    assert (exc.breach.observed, exc.breach.projected) == (pytest.approx(0.03), pytest.approx(0.03))
    row = stored(instrumented, run_id)
    assert (row["llm_calls"], row["cost_usd"]) == (1, pytest.approx(0.03, abs=1e-12))


def test_async_calls_are_projected_too(instrumented) -> None:
    fake = FakeLLM(default=json_reply(THREE_CENTS))
    client = fake.openai(async_client=True)

    async def main() -> str:
        with pytest.raises(runtrace.BudgetExceeded):
            async with runtrace.run("async", budget=runtrace.Budget(max_cost_usd=0.05)) as run:
                for _ in range(5):
                    await client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
        return run.id

    run_id = asyncio.run(main())
    assert len(fake.requests) == 1
    assert stored(instrumented, run_id)["cost_usd"] == pytest.approx(0.03, abs=1e-12)


# claude-sonnet-4-6 at $3/M input and $15/M output: 2,000 in + 1,000 out = $0.021 a call.
CLAUDE_CALL = claude_message(model="claude-sonnet-4-6", usage=ClaudeUsage(2000, 1000))
CLAUDE_PROMPT = [{"role": "user", "content": "z" * 8_000}]  # 2,000 tokens by chars/4


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_calls_are_projected_with_their_max_tokens(instrumented, stream: bool) -> None:
    pytest.importorskip("anthropic")
    reply = events_reply(claude_events(CLAUDE_CALL)) if stream else json_reply(CLAUDE_CALL)
    fake = FakeLLM(default=reply)
    client = fake.anthropic()

    def ask() -> None:
        result = client.messages.create(model="claude-sonnet-4-6", max_tokens=1000, messages=CLAUDE_PROMPT,
                                        stream=stream)
        if stream:
            for _event in result:
                pass

    exc, run_id = run_until_stopped(runtrace.Budget(max_cost_usd=0.05), ask)
    # Spent 0, 0.021, 0.042 before each call: the third (0.042 + 0.021 > 0.05) is refused.
    assert len(fake.requests) == 2
    assert (exc.breach.observed, exc.breach.projected) == (pytest.approx(0.042), pytest.approx(0.021))
    row = stored(instrumented, run_id)
    assert (row["llm_calls"], row["cost_usd"]) == (2, pytest.approx(0.042, abs=1e-12))
    assert row["cost_usd"] <= 0.05


def test_input_token_budget_counts_the_prompt_about_to_be_sent(instrumented) -> None:
    fake = FakeLLM(default=json_reply(THREE_CENTS))
    client = fake.openai()
    exc, _ = run_until_stopped(runtrace.Budget(max_input_tokens=7000), lambda: client.chat.completions.create(
        model="gpt-5.5", messages=PROMPT_3000))
    assert len(fake.requests) == 2  # 6,000 sent + 3,000 in this prompt > 7,000
    assert (exc.limit, exc.breach.observed, exc.breach.projected) == ("max_input_tokens", 6000.0, 3000.0)


def test_warn_lets_the_call_through_and_records_the_projection(instrumented) -> None:
    fake = FakeLLM(default=json_reply(THREE_CENTS))
    client = fake.openai()
    with runtrace.run("warned", budget=runtrace.Budget(max_cost_usd=0.05, on_exceed="warn")):
        for _ in range(2):
            client.chat.completions.create(model="gpt-5.5", messages=PROMPT_3000)
    assert len(fake.requests) == 2
    run_span = next(s for s in instrumented.spans() if s.name == "run warned")
    events = [dict(e.attributes or {}) for e in run_span.events if e.name == semconv.EVENT_BUDGET]
    assert len(events) == 1
    assert events[0][semconv.BUDGET_LIMIT] == "max_cost_usd"
    assert events[0][semconv.BUDGET_OBSERVED] == pytest.approx(0.03)
    assert events[0][semconv.BUDGET_PROJECTED] == pytest.approx(0.03)
    assert events[0][semconv.BUDGET_ACTION] == "continue"


def test_expected_output_rule() -> None:
    plan = projection.CallPlan(input_tokens=10, max_output_tokens=None)
    assert projection.expected_output_tokens(plan, 0, 0) == 0  # first call, no cap: input only
    assert projection.expected_output_tokens(plan, 1001, 2) == 501  # the run's mean, rounded up
    capped = projection.CallPlan(input_tokens=10, max_output_tokens=64)
    assert projection.expected_output_tokens(capped, 1001, 2) == 64
    assert projection.projected_cost(plan, 100) == 0.0  # no price: projected at $0
    priced = projection.CallPlan(input_tokens=10, max_output_tokens=None, price=lambda i, o: i * 0.5 + o)
    assert projection.projected_cost(priced, 100) == 105.0


def test_prompt_counter_counts_each_message_and_remembers_it() -> None:
    counter = projection.PromptTokenCounter(cap=2)
    calls: list[str] = []
    real = detect.CHARS_PER_4

    class Counting:
        name = "counting"

        def count(self, text: str) -> int:
            calls.append(text)
            return real.count(text)

    import runtrace.detect as d

    saved = d._estimator
    d._estimator = Counting()  # type: ignore[assignment]
    try:
        assert counter.count([("user", "a" * 8), ("assistant", "b" * 5), ("user", "")]) == 2 + 2
        assert counter.count([("user", "a" * 8), ("assistant", "b" * 5), ("user", "c" * 12)]) == 2 + 2 + 3
    finally:
        d._estimator = saved
    assert calls == ["a" * 8, "b" * 5, "c" * 12]  # each text estimated once


def test_breach_describe() -> None:
    assert Breach("max_cost_usd", 0.05, 0.03, 0.03).describe() == (
        "max_cost_usd = 0.05 would be crossed by the next call (0.03 so far + 0.03 projected)")
    assert Breach("max_cost_usd", 0.05, 0.06).describe() == "max_cost_usd = 0.05 reached (0.06 so far)"

"""`runtrace demo`: every run it promises, with costs checked by hand.

List prices used below (genai-prices' bundled table, per million tokens):
gpt-5.5 $5 input, $0.50 cached input, $30 output; gpt-5-mini $0.25 input,
$0.025 cached input, $2 output.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from runtrace import _demo_providers, demo
from runtrace.cli import main
from runtrace.store.db import Store
from runtrace.store.queries import get_run, list_runs

PRICES = {"gpt-5.5": (5.0, 0.5, 30.0), "gpt-5-mini": (0.25, 0.025, 2.0)}


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory) -> dict[str, dict]:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    demo.run_demo(path)
    store = Store.open(path)
    try:
        return {r["name"]: get_run(store, r["id"]) for r in list_runs(store, limit=0)}
    finally:
        store.close()


def test_every_script_is_a_run_with_its_outcome(demo_runs) -> None:
    assert {name: (r["outcome"], r["stop_reason"]) for name, r in demo_runs.items()} == {
        "fix flaky test #412": ("accepted", None),
        "add pagination to /invoices": ("rejected", None),
        "upgrade dependencies": ("abandoned", None),
        "summarise incident 2291": ("error", None),
        "make invoices test pass": ("rejected", None),
        "triage all flaky tests": ("budget_stopped", "max_cost_usd"),
        "document the billing API": ("accepted", None),
        "compare providers on a review": ("accepted", None),
    }
    # (the service name is the test session's: one TracerProvider per process)
    assert len({r["service"] for r in demo_runs.values()}) == 1


def test_waste_flags(demo_runs) -> None:
    flags = {name: (r["loop_detected"], r["repeated_reads"]) for name, r in demo_runs.items()}
    assert flags["make invoices test pass"] == (True, 2)  # run_tests x3 with the same failure
    assert flags["document the billing API"] == (False, 2)  # two files read twice each, unchanged
    assert flags["fix flaky test #412"] == (False, 0)


def test_costs_match_a_hand_computation(demo_runs) -> None:
    # upgrade dependencies, gpt-5-mini: 943 in / 41 out, then 971 in / 49 out, nothing cached
    # (943*0.25 + 41*2 + 971*0.25 + 49*2) / 1e6 = 0.0006585
    upgrade = demo_runs["upgrade dependencies"]
    assert [(s["input_tokens"], s["output_tokens"]) for s in upgrade["spans"] if s["kind"] == "llm"] == \
        [(943, 41), (971, 49)]
    assert upgrade["cost_usd"] == pytest.approx(0.0006585, abs=1e-12)
    # fix flaky test #412, gpt-5.5; the third call: 1,237 in of which 1,024 cached, 133 out:
    # (213*5 + 1024*0.5 + 133*30) / 1e6 = 0.005567
    fix = demo_runs["fix flaky test #412"]
    llm = [s for s in fix["spans"] if s["kind"] == "llm"]
    assert (llm[2]["input_tokens"], llm[2]["cached_input_tokens"], llm[2]["output_tokens"]) == (1237, 1024, 133)
    assert llm[2]["cost_usd"] == pytest.approx(0.005567, abs=1e-12)
    assert fix["cost_usd"] == pytest.approx(0.031023, abs=1e-12)
    # every priced call of every run, from its own token counts and the list prices
    for run in demo_runs.values():
        if run["name"] == _demo_providers.NAME:
            continue  # checked by hand in test_the_multi_provider_run_prices_each_provider
        total = 0.0
        for span in run["spans"]:
            if span["kind"] != "llm" or span["input_tokens"] is None:
                continue
            base = "gpt-5.5" if span["model"].startswith("gpt-5.5") else span["model"]
            inp, cached, out = PRICES[base]
            expected = ((span["input_tokens"] - span["cached_input_tokens"]) * inp
                        + span["cached_input_tokens"] * cached + span["output_tokens"] * out) / 1e6
            assert span["cost_usd"] == pytest.approx(expected, abs=1e-12), span["name"]
            total += expected
        assert run["cost_usd"] == pytest.approx(total, abs=1e-9), run["name"]


def test_the_budget_stop_happens_before_the_money_is_spent(demo_runs) -> None:
    triage = demo_runs["triage all flaky tests"]
    costs = [s["cost_usd"] for s in triage["spans"] if s["kind"] == "llm"]
    # The budget projects each call before sending it: the 5th call (about $0.0043 more) would have
    # crossed $0.03, so it was never sent and the run stopped at $0.028512, under its limit.
    assert sum(costs) == pytest.approx(0.028512, abs=1e-12)
    assert (triage["llm_calls"], triage["tool_calls"]) == (4, 4)
    assert (triage["outcome"], triage["stop_reason"]) == ("budget_stopped", "max_cost_usd")


def test_the_failed_call_is_an_llm_call_that_was_not_billed(demo_runs) -> None:
    failed = demo_runs["summarise incident 2291"]
    (span,) = [s for s in failed["spans"] if s["kind"] == "llm"]
    assert span["status"] == "ERROR"
    assert span["attributes"]["error.type"] == "InternalServerError"
    assert (failed["cost_usd"], failed["unpriced_calls"]) == (0.0, 0)


def test_demo_command_prints_the_runs_table(tmp_path) -> None:
    store = tmp_path / "d.db"
    result = CliRunner().invoke(main, ["demo", "--store", str(store), "--pace", "0"], catch_exceptions=False)
    assert result.exit_code == 0
    for name in ("fix flaky test #412", "budget_stopped", "stop:max_cost_usd", "loop", "2 re-reads"):
        assert name in result.stdout
    listed = CliRunner().invoke(main, ["runs", "--store", str(store), "--format", "json"])
    assert len(json.loads(listed.stdout)) == len(demo.SCRIPTS) + 1  # + the multi-provider run


def test_the_multi_provider_run_prices_each_provider(demo_runs) -> None:
    run = demo_runs[_demo_providers.NAME]
    llm = [(s["model"], s["attributes"]["gen_ai.provider.name"], s["input_tokens"], s["cached_input_tokens"],
            s["output_tokens"]) for s in run["spans"] if s["kind"] == "llm"]
    assert llm == [("gpt-5-mini", "openai", 912, 0, 42), ("claude-sonnet-4-6", "anthropic", 1200, 0, 300),
                   ("gemini-2.5-flash", "gcp.gemini", 1500, 1024, 244),  # Gemini: 180 out + 64 thoughts
                   ("deepseek-chat", "deepseek", 912, 0, 14),  # an openai client on api.deepseek.com
                   ("gpt-4o-mini", "openai", 2000, 0, 150),  # through LiteLLM: one span, not two
                   # Bedrock Converse: inputTokens 800 exclude the 2,048 cache reads
                   ("anthropic.claude-3-5-haiku-20241022-v1:0", "aws.bedrock", 2848, 2048, 120)]
    costs = [s["cost_usd"] for s in run["spans"] if s["kind"] == "llm"]
    # gpt-5-mini 912*0.25 + 42*2; claude-sonnet-4-6 ($3/$15) 1200*3 + 300*15;
    # gemini-2.5-flash ($0.30 in, $0.03 cached, $2.50 out) 476*0.30 + 1024*0.03 + 244*2.50;
    # deepseek-chat ($0.27/$1.10) 912*0.27 + 14*1.10; gpt-4o-mini ($0.15/$0.60) 2000*0.15 + 150*0.60;
    # Claude 3.5 Haiku on Bedrock ($0.80 in, $0.08 cache read, $4 out) 800*0.80 + 2048*0.08 + 120*4; per million
    assert costs == pytest.approx([0.000312, 0.0081, 0.00078352, 0.00026164, 0.00039, 0.00128384], abs=1e-12)
    assert (run["llm_calls"], run["unpriced_calls"]) == (6, 0)
    assert run["cost_usd"] == pytest.approx(0.011131, abs=1e-12)


def test_the_multi_provider_run_is_skipped_without_its_clients(monkeypatch) -> None:
    monkeypatch.setattr(_demo_providers, "missing_clients", lambda: ["google-genai", "boto3"])
    lines: list[str] = []
    assert _demo_providers.run_multi_provider(lines.append) is None
    assert lines == [f"run: {_demo_providers.NAME} skipped: install google-genai, boto3 "
                     "(pip install -e '.[anthropic,gemini,litellm,bedrock]' in a checkout)"]

"""``runtrace serve --alerts``: rules fire once per run (or window) and rule, reach a webhook that is
down, slow or failing, are recorded in the store and shown on the Alerts page (docs/alerts.md)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import runtrace
from alert_support import Webhook, otlp_json, wait_for
from runtrace.alerts import AlertsConfigError, load_alerts
from runtrace.alerts.config import parse_alerts
from runtrace.alerts.rules import evaluate
from runtrace.cli import main as cli_main
from runtrace.server import create_app
from runtrace.store.db import Store, connect
from runtrace.store.records import SpanRecord
from store_helpers import BASE_NS, S, llm, outcome_span, run_span, tool
from test_server_support import free_port, running_server

BASE = "http://127.0.0.1:8321"
DAY = "2026-11-18T00:00:00Z"  # the UTC day of store_helpers.BASE_NS


def rules_toml(url: str, **webhook: Any) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in webhook.items())
    return f'''
[webhook]
url = "{url}"
{extra}
[[rule]]
name = "runaway loop"
when = "loop_detected"

[[rule]]
name = "dear run"
when = "run_cost_over"
usd = 2.0

[[rule]]
name = "stopped"
when = "budget_stopped"

[[rule]]
name = "slow run"
when = "run_longer_than"
seconds = 600

[[rule]]
name = "checkout rejections"
when = "rejected_share_over"
project = "checkout"
percent = 30
window = "1d"

[[rule]]
name = "billing spend"
when = "project_spend_over"
project = "billing"
usd = 2.9
window = "1d"
'''


def config_at(tmp_path: Path, url: str = "http://127.0.0.1:9/hook", **webhook: Any) -> Any:
    path = tmp_path / "alerts.toml"
    path.write_text(rules_toml(url, **webhook), encoding="utf-8")
    return load_alerts(path)


def spans_of_runs() -> dict[str, list[SpanRecord]]:
    """Seven runs; which rule each should fire is in EXPECTED."""
    runs: dict[str, list[SpanRecord]] = {
        "r-loop": [run_span("r-loop", 1, start_s=0, end_s=30, loop=True, outcome="abandoned"),
                   tool("r-loop", 2, start_s=1, end_s=2, parent=1, loop=True),
                   llm("r-loop", 3, start_s=3, end_s=4, parent=1, cost=0.10)],
        "r-dear": [run_span("r-dear", 11, start_s=10, end_s=60, outcome="accepted"),
                   llm("r-dear", 12, start_s=11, end_s=20, parent=11, cost=1.5),
                   llm("r-dear", 13, start_s=21, end_s=30, parent=11, cost=1.0)],
        "r-stop": [run_span("r-stop", 21, start_s=20, end_s=40, outcome="budget_stopped",
                            stop_reason="max_cost_usd"),
                   llm("r-stop", 22, start_s=21, end_s=22, parent=21, cost=0.30)],
        "r-long": [run_span("r-long", 31, start_s=30, end_s=730, outcome="accepted"),
                   llm("r-long", 32, start_s=31, end_s=32, parent=31, cost=0.05)],
    }
    outcomes = ["accepted", "rejected", "accepted", "accepted", None]  # the fifth's verdict comes later
    for i, outcome in enumerate(outcomes):
        rid = f"c-{i}"
        runs[rid] = [run_span(rid, 100 + 10 * i, start_s=100 + i, end_s=110 + i, project="checkout", owner="bob",
                              outcome=outcome, name=f"checkout {i}"),
                     llm(rid, 101 + 10 * i, start_s=101 + i, end_s=102 + i, parent=100 + 10 * i, cost=0.01)]
    runs["c-4"].append(outcome_span("c-4", 199, at_s=500, outcome="rejected", by="reviewer"))
    return runs


EXPECTED = {("runaway loop", "r-loop"), ("dear run", "r-dear"), ("stopped", "r-stop"), ("slow run", "r-long"),
            ("checkout rejections", f"checkout|{DAY}"), ("billing spend", f"billing|{DAY}")}


def fired(path: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return sorted((r[0], r[1]) for r in conn.execute("SELECT rule, subject FROM alerts"))
    finally:
        conn.close()


# --- the file -------------------------------------------------------------------


BAD_FILES = [
    ("[[rule]]\nname='x'\nwhen='loop_detected'\n", "no [webhook]: add [webhook] with url = \"https://...\""),
    ("[webhook]\nurl='ftp://x'\n[[rule]]\nname='x'\nwhen='loop_detected'\n",
     "[webhook] url must be an http:// or https:// URL, got 'ftp://x'"),
    ("[webhook]\nurl='http://h/x'\n", "no [[rule]]: an alerts file needs at least one rule"),
    ("[webhook]\nurl='http://h/x'\n[[rule]]\nname='a'\nwhen='loop_detected'\n[[rule]]\nname='dear run'\n"
     "when='run_cost_over'\n", "rule 'dear run' (rule 2): when = 'run_cost_over' needs usd"),
    ("[webhook]\nurl='http://h/x'\n[[rule]]\nname='dear run'\nwhen='run_cost_over'\nusd=-1\n",
     "rule 'dear run' (rule 1): usd must be a number over 0, got -1"),
    ("[webhook]\nurl='http://h/x'\n[[rule]]\nname='x'\nwhen='loops'\n",
     "rule 'x' (rule 1): when must be one of loop_detected, budget_stopped, run_longer_than, run_cost_over, "
     "rejected_share_over, abandoned_share_over, project_spend_over, got 'loops'"),
    ("[webhook]\nurl='http://h/x'\n[[rule]]\nname='share'\nwhen='rejected_share_over'\npercent=30\n",
     "rule 'share' (rule 1): when = 'rejected_share_over' needs a window, e.g. window = \"1d\""),
    ("[webhook]\nurl='http://h/x'\n[[rule]]\nname='share'\nwhen='rejected_share_over'\npercent=30\n"
     "window='1 day'\n", "rule 'share' (rule 1): window must be like 30m, 1h, 1d or 7d, got '1 day'"),
    ("[webhook]\nurl='http://h/x'\n[[rule]]\nname='x'\nwhen='loop_detected'\nusd=3\n",
     "rule 'x' (rule 1): usd does not apply to when = 'loop_detected'"),
    ("[webhook]\nurl='http://h/x'\n[[rule]]\nname='x'\nwhen='loop_detected'\n[[rule]]\nname='x'\n"
     "when='budget_stopped'\n", "rule 'x' (rule 2): another rule has this name; names must be unique "
     "(a firing is remembered by rule name)"),
    ("[webhook]\nurl='http://h/x'\n[[rule]]\nwhen='loop_detected'\n", "rule 1: name must be non-empty text, got None"),
    ("[webhook]\nurl='http://h/x'\n[[rule]]\nname='x'\nwhen='loop_detected'\nprojct='a'\n",
     "rule 'x' (rule 1): unknown key 'projct' (a rule has min_runs, name, owner, percent, project, seconds, usd, "
     "when, window)"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_alerts_file_names_the_file_the_rule_and_the_problem(tmp_path: Path, text: str,
                                                                   message: str) -> None:
    path = tmp_path / "alerts.toml"
    with pytest.raises(AlertsConfigError) as caught:
        parse_alerts(text, path)
    assert str(caught.value) == f"{path}: {message}"


def test_serve_refuses_a_bad_alerts_file_before_it_starts(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(BAD_FILES[3][0], encoding="utf-8")
    result = CliRunner().invoke(cli_main, ["serve", "--port", "0", "--store", str(tmp_path / "s.db"),
                                           "--alerts", str(path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == f"Error: {path}: {BAD_FILES[3][1]}"
    missing = CliRunner().invoke(cli_main, ["serve", "--port", "0", "--store", str(tmp_path / "s.db"),
                                            "--alerts", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 1
    assert f"Error: {tmp_path / 'nope.toml'}: cannot read the alerts file: No such file or directory" \
        in missing.output


# --- the rules --------------------------------------------------------------------


def test_each_rule_fires_once_with_the_figures_and_a_link(tmp_path: Path) -> None:
    config = config_at(tmp_path)
    path = tmp_path / "runtrace.db"
    with Store.open(path) as store:
        conn = connect(path)
        assert evaluate(conn, config, BASE, BASE_NS) == 0  # the cursor starts at the (empty) store's end
        for spans in spans_of_runs().values():
            store.ingest(spans)
        assert evaluate(conn, config, BASE, BASE_NS + 1000 * S) == 6
        assert evaluate(conn, config, BASE, BASE_NS + 1001 * S) == 0  # nothing new, nothing again
        payloads = {(r[0], r[1]): json.loads(r[2]) for r in conn.execute("SELECT rule, subject, payload FROM alerts")}
        conn.close()
    assert set(payloads) == EXPECTED
    dear = payloads[("dear run", "r-dear")]
    assert dear["text"] == ("runtrace alert \u201cdear run\u201d: run fix flaky test (r-dear) of billing cost $2.50, "
                            "over $2.00. http://127.0.0.1:8321/runs/r-dear")
    assert dear["figures"] == {"cost_usd": 2.5, "duration_s": 50.0, "llm_calls": 2, "tool_calls": 0,
                               "outcome": "accepted", "stop_reason": None, "threshold_usd": 2.0}
    assert (dear["rule"], dear["when"], dear["run_id"], dear["project"], dear["owner"], dear["url"], dear["key"]) == (
        "dear run", "run_cost_over", "r-dear", "billing", "alice", f"{BASE}/runs/r-dear", "dear run|r-dear")
    share = payloads[("checkout rejections", f"checkout|{DAY}")]
    assert share["text"] == ("runtrace alert \u201ccheckout rejections\u201d: 2 of 5 finished runs of checkout were "
                             f"rejected in the 1d window from {DAY}: 40.0%, over 30%. {BASE}/?project=checkout&"
                             "since=2026-11-18T00%3A00%3A00Z&until=2026-11-19T00%3A00%3A00Z&outcome=rejected")
    assert share["figures"] == {"runs": 5, "finished_runs": 5, "cost_usd": 0.05, "rejected_runs": 2,
                                "share_percent": 40.0, "threshold_percent": 30.0, "min_runs": 5}
    assert share["window"] == {"start": DAY, "end": "2026-11-19T00:00:00Z", "length": "1d"}
    spend = payloads[("billing spend", f"billing|{DAY}")]
    assert spend["figures"] == {"runs": 4, "finished_runs": 4, "cost_usd": 2.95, "threshold_usd": 2.9}  # .1+2.5+.3+.05
    assert spend["text"] == ("runtrace alert \u201cbilling spend\u201d: billing spent $2.95 in the 1d window from "
                             f"{DAY} (4 runs), over $2.90. {BASE}/?project=billing&since=2026-11-18T00%3A00%3A00Z&"
                             "until=2026-11-19T00%3A00%3A00Z")


def test_rules_fire_once_per_run_and_rule_whatever_the_order_spans_arrive_in(tmp_path: Path) -> None:
    config = config_at(tmp_path)
    every = [s for spans in spans_of_runs().values() for s in spans]
    for seed in range(8):
        order = list(every)
        random.Random(seed).shuffle(order)
        path = tmp_path / f"order-{seed}.db"
        with Store.open(path) as store:
            conn = connect(path)
            evaluate(conn, config, BASE, BASE_NS)
            rng = random.Random(1000 + seed)
            while order:
                size = rng.randint(1, 3)
                batch, order = order[:size], order[size:]
                store.ingest(batch)
                evaluate(conn, config, BASE, BASE_NS + 1000 * S)
            conn.close()
        assert fired(path) == sorted(EXPECTED), f"arrival order {seed}"


def test_runs_recorded_before_alerts_were_switched_on_do_not_fire(tmp_path: Path) -> None:
    config = config_at(tmp_path)
    path = tmp_path / "runtrace.db"
    runs = spans_of_runs()
    with Store.open(path) as store:
        store.ingest(runs["r-dear"])
        conn = connect(path)
        assert evaluate(conn, config, BASE, BASE_NS) == 0
        store.ingest(runs["r-loop"])
        assert evaluate(conn, config, BASE, BASE_NS) == 1
        conn.close()
    assert fired(path) == [("runaway loop", "r-loop")]


# --- the server and the webhook ----------------------------------------------------------


def post_spans(base: str, spans: list[SpanRecord]) -> httpx.Response:
    response = httpx.post(f"{base}/v1/traces", content=otlp_json(spans),
                          headers={"content-type": "application/json"}, timeout=20)
    assert response.status_code == 200, response.text
    return response


def statuses(path: Path) -> list[tuple[str, str, int]]:
    conn = sqlite3.connect(path)
    try:
        return sorted((r[0], r[1], r[2]) for r in conn.execute("SELECT rule, status, attempts FROM alerts"))
    finally:
        conn.close()


FAST_RETRY = {"backoff_seconds": 0.05, "max_backoff_seconds": 0.2, "timeout_seconds": 5, "max_attempts": 1000}


@pytest.mark.slow
def test_a_webhook_that_is_down_then_failing_then_slow_gets_every_alert_once(tmp_path: Path) -> None:
    port = free_port()
    hook = Webhook(port, fail_first=2, delay=0.3)  # not started yet: down
    config = config_at(tmp_path, hook.url, **FAST_RETRY)
    path = tmp_path / "runtrace.db"
    runs = spans_of_runs()
    app = create_app(path, alerts=config, base_url=BASE, alerts_poll_seconds=0.1)
    with running_server(app) as base:
        for spans in runs.values():
            post_spans(base, spans)
        wait_for(lambda: len(statuses(path)) == 6 and all(a >= 3 for _r, _s, a in statuses(path)),
                 what="six firings, each tried three times against the closed port")
        assert {s for _r, s, _a in statuses(path)} == {"pending"}
        page = httpx.get(f"{base}/alerts").text
        assert "pending (6)" in page and "cannot reach the webhook" in page
        hook.start()
        try:
            wait_for(lambda: len(hook.received) == 6, what="six deliveries")
            wait_for(lambda: {s for _r, s, _a in statuses(path)} == {"delivered"}, what="six rows delivered")
            threading.Event().wait(0.5)  # a retry that was still to come would arrive now
            assert hook.keys() == sorted(f"{rule}|{subject}" for rule, subject in EXPECTED)
            assert hook.refused == 2
            page = httpx.get(f"{base}/alerts").text
            assert "delivered (6)" in page and "pending (0)" in page and "failed (0)" in page
            assert '<a href="/runs/r-dear">' in page
            assert all(p["text"].startswith("runtrace alert \u201c") for p in hook.received)
        finally:
            hook.stop()


@pytest.mark.slow
def test_the_receiver_answers_while_the_webhook_hangs(tmp_path: Path) -> None:
    gate = threading.Event()
    hook = Webhook(free_port(), gate=gate).start()
    config = config_at(tmp_path, hook.url, timeout_seconds=60, backoff_seconds=0.05)
    path = tmp_path / "runtrace.db"
    runs = spans_of_runs()
    try:
        # A poll slower than the test: only the receiver's wake-up after each commit can make the rules run.
        with running_server(create_app(path, alerts=config, base_url=BASE, alerts_poll_seconds=120)) as base:
            post_spans(base, runs["r-loop"])
            assert hook.entered.wait(30), "the first alert never reached the webhook"
            post_spans(base, runs["r-dear"])  # answered while the webhook holds the first post
            wait_for(lambda: len(fired(path)) == 2, what="the second firing, recorded while the first posts")
            assert not gate.is_set() and hook.received == []
            gate.set()
            wait_for(lambda: len(hook.received) == 2, what="both deliveries")
        assert hook.keys() == ["dear run|r-dear", "runaway loop|r-loop"]
    finally:
        gate.set()
        hook.stop()


@pytest.mark.slow
def test_a_restart_neither_loses_nor_repeats_an_alert(tmp_path: Path) -> None:
    port = free_port()
    config = config_at(tmp_path, f"http://127.0.0.1:{port}/hook", **FAST_RETRY)
    path = tmp_path / "runtrace.db"
    runs = spans_of_runs()
    first = Webhook(port).start()
    with running_server(create_app(path, alerts=config, base_url=BASE, alerts_poll_seconds=0.1)) as base:
        post_spans(base, runs["r-dear"])
        wait_for(lambda: len(first.received) == 1, what="the first delivery")
        first.stop()  # the webhook goes down
        post_spans(base, runs["r-loop"])
        wait_for(lambda: any(r == "runaway loop" and s == "pending" and a >= 2 for r, s, a in statuses(path)),
                 what="two failed attempts of the loop alert")
    # serve is down: another process writes to the store meanwhile
    with Store.open(path) as store:
        store.ingest(runs["r-stop"])
        store.ingest([llm("r-dear", 14, start_s=31, end_s=32, parent=11, cost=0.5)])  # dearer still: no new alert
    second = Webhook(port).start()
    try:
        with running_server(create_app(path, alerts=config, base_url=BASE, alerts_poll_seconds=0.1)):
            wait_for(lambda: len(second.received) == 3, what="the pending alert and the two new ones")
            threading.Event().wait(0.5)
    finally:
        second.stop()
    assert first.keys() == ["dear run|r-dear"]
    # r-stop and the extra call take billing past $2.90 for the day: $2.50 + $0.10 + $0.30 + $0.50
    assert second.keys() == [f"billing spend|billing|{DAY}", "runaway loop|r-loop", "stopped|r-stop"]
    assert fired(path) == [("billing spend", f"billing|{DAY}"), ("dear run", "r-dear"),
                           ("runaway loop", "r-loop"), ("stopped", "r-stop")]
    assert {s for _r, s, _a in statuses(path)} == {"delivered"}


def test_the_alert_files_in_the_readme_and_the_docs_are_valid() -> None:
    root = Path(__file__).resolve().parents[1]
    blocks = []
    for doc in (root / "README.md", root / "docs" / "alerts.md"):
        found = [b for b in re.findall(r"```toml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
                 if "[webhook]" in b]
        assert found, f"{doc.name} shows no alerts file"
        blocks += [(doc, b) for b in found]
    whens = set()
    for doc, block in blocks:
        config = parse_alerts(block, doc)
        whens |= {r.when for r in config.rules}
    assert whens == {"loop_detected", "budget_stopped", "run_cost_over", "run_longer_than", "rejected_share_over",
                     "project_spend_over"}


@pytest.mark.slow
def test_the_serve_command_posts_alerts_with_links_to_its_own_address(tmp_path: Path) -> None:
    """The real command line: the banner names the rules, a firing reaches the webhook with a run link."""
    hook = Webhook(free_port()).start()
    path = tmp_path / "alerts.toml"
    path.write_text(f'[webhook]\nurl = "{hook.url}"\n[[rule]]\nname = "runaway loop"\nwhen = "loop_detected"\n',
                    encoding="utf-8")
    port = free_port()
    src = str(Path(runtrace.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "runtrace.cli", "serve", "--port", str(port), "--store",
                                str(tmp_path / "runtrace.db"), "--alerts", str(path)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                assert process.poll() is None, "serve exited"
                return False

        wait_for(up, timeout=60, what="serve to start")
        post_spans(base, [run_span("r-<b>", 1, start_s=0, end_s=5, loop=True, name="<script>x</script>")])
        wait_for(lambda: len(hook.received) == 1, what="the alert")
        assert hook.received[0]["url"] == f"{base}/runs/r-%3Cb%3E"
        assert hook.received[0]["text"] == (f"runtrace alert \u201crunaway loop\u201d: run <script>x</script> (r-<b>) of "
                                            f"billing is in a loop (0 tool calls, $0.00 so far). {base}/runs/r-%3Cb%3E")
        wait_for(lambda: "delivered (1)" in httpx.get(f"{base}/alerts").text, what="the Alerts page to say so")
        page = httpx.get(f"{base}/alerts").text
        assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
        assert '<a href="/alerts" aria-current="page">Alerts</a>' in page
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(30) in (0, -signal.SIGTERM)
        finally:
            if process.poll() is None:
                process.kill()
            hook.stop()
    banner = process.stderr.read().decode() if process.stderr else ""
    assert f"  alerts       1 rule(s) from {path} -> {hook.url} (firings at {base}/alerts)" in banner
    assert "Traceback" not in banner


def test_the_alerts_room_keeps_its_doors() -> None:
    """alerts/ sits on the store (docs/architecture.md); the store and the instrumentation never import it."""
    from test_import_doors import MODULES

    def room(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else ""

    forbidden = {"instrumentation", "runs", "_setup", "server", "cli"}
    crossing = {m: sorted(i for i in imps if room(i) in forbidden)
                for m, imps in MODULES.items() if room(m) == "alerts"}
    assert {m: c for m, c in crossing.items() if c} == {}
    assert len(crossing) == 5
    users = sorted(m for m, imps in MODULES.items() if room(m) != "alerts" and any(room(i) == "alerts" for i in imps))
    assert users == ["runtrace.cli.serve", "runtrace.server.app"]


def test_retries_back_off_exponentially_and_a_firing_fails_after_max_attempts(tmp_path: Path) -> None:
    """Time injected, not slept: each try is due only once its backoff has passed, leased while it posts."""
    from runtrace.alerts.deliver import backoff_seconds, claim_due, deliver_due

    hook = Webhook(free_port(), fail_first=10**6).start()  # answers 500, always
    config = config_at(tmp_path, hook.url, backoff_seconds=2, max_backoff_seconds=5, max_attempts=4,
                       timeout_seconds=5)
    assert [backoff_seconds(config.webhook, n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 5.0, 5.0]
    path = tmp_path / "runtrace.db"
    try:
        with Store.open(path) as store:
            conn = connect(path)
            evaluate(conn, config, BASE, BASE_NS)
            store.ingest(spans_of_runs()["r-dear"])
            assert evaluate(conn, config, BASE, BASE_NS) == 1
            now = BASE_NS

            def row() -> tuple[str, int, int, str | None]:
                r = conn.execute("SELECT status, attempts, next_attempt_ns, last_error FROM alerts").fetchone()
                return r[0], r[1], r[2], r[3]

            assert deliver_due(conn, config.webhook, lambda: now) == 0
            assert row() == ("pending", 1, BASE_NS + 2 * S, "HTTP 500 Internal Server Error")
            now = BASE_NS + 2 * S - 1
            deliver_due(conn, config.webhook, lambda: now)
            assert row()[1] == 1  # not due yet: not tried
            now = BASE_NS + 2 * S
            other = connect(path)  # a second server on the same store
            claimed = claim_due(other, config.webhook, now)
            assert [c.attempts for c in claimed] == [2]
            assert claim_due(conn, config.webhook, now) == []  # leased: the first server does not post it too
            assert row()[2] == now + 10 * S  # the lease: timeout + 5 s
            other.close()
            now += 10 * S  # the second server died mid-post; the lease ran out
            deliver_due(conn, config.webhook, lambda: now)
            assert row() == ("pending", 3, now + 5 * S, "HTTP 500 Internal Server Error")  # 2 * 2**2, capped at 5
            now += 5 * S
            deliver_due(conn, config.webhook, lambda: now)
            assert row()[:2] == ("failed", 4)
            now += 3600 * S
            assert deliver_due(conn, config.webhook, lambda: now) == 0 and row()[:2] == ("failed", 4)
            conn.close()
        assert hook.refused == 3 and hook.received == []  # the claim without a post is the fourth attempt
    finally:
        hook.stop()


@pytest.mark.slow
def test_spans_another_process_writes_to_the_store_fire_too(tmp_path: Path) -> None:
    """An instrumented program writing the same file (not through the receiver) is seen by the poll."""
    hook = Webhook(free_port()).start()
    config = config_at(tmp_path, hook.url, **FAST_RETRY)
    path = tmp_path / "runtrace.db"
    try:
        with running_server(create_app(path, alerts=config, base_url=BASE, alerts_poll_seconds=0.2)):
            script = ("import sys; from store_helpers import run_span; from runtrace.store.db import Store\n"
                      "with Store.open(sys.argv[1]) as s:\n"
                      "    s.ingest([run_span('r-other', 1, start_s=0, end_s=5, loop=True)])\n")
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
            subprocess.run([sys.executable, "-c", script, str(path)], env=env, check=True, timeout=60)
            wait_for(lambda: len(hook.received) == 1, what="the other process's run to fire")
        assert hook.keys() == ["runaway loop|r-other"]
    finally:
        hook.stop()

"""What the per-call hot path does once instead of every call (issue 14), and that it records the same.

- LLM and tool spans carry ``runtrace.run.id`` (and the run's name on its first
  spans) from their start, so a sampler or a processor placed before runtrace's
  sees them, and ``RunStampProcessor`` has no baggage lookup or second attribute
  pass left to do;
- the provider and server attributes of an openai client are worked out once per
  client, and again when its ``base_url`` changes.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import runtrace
from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply
from runtrace import semconv as sc
from runtrace.instrumentation import endpoints

TESTS = Path(__file__).resolve().parent

_SAMPLER_CHILD = textwrap.dedent('''
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler

    seen = {}

    class Recording(Sampler):
        """What a user's sampler is given: the span's start attributes."""
        def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                          trace_state=None):
            seen[name] = dict(attributes or {})
            return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        def get_description(self):
            return "recording"

    trace.set_tracer_provider(TracerProvider(sampler=Recording()))
    import runtrace
    from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply

    runtrace.instrument(store=False)
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(100, 10))))
    client = fake.openai()
    read_file = runtrace.tool(name="read_file")(lambda path: "x = 1")
    with runtrace.run("sampled", project="billing", owner="alice") as run:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        read_file(path="a.py")
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}])
    runtrace.uninstrument()
    print(json.dumps({"run_id": run.id, "seen": seen}))
''')


def test_sampler_sees_run_id_and_name_at_the_start_of_llm_and_tool_spans() -> None:
    # A fresh process: the sampler belongs to the TracerProvider, one per process.
    proc = subprocess.run([sys.executable, "-c", _SAMPLER_CHILD], capture_output=True, text=True, timeout=120,
                          env={**_env(), "PYTHONPATH": f"{TESTS.parent / 'src'}:{TESTS}"}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    seen, run_id = out["seen"], out["run_id"]
    assert sorted(seen) == ["chat gpt-4o-mini", "execute_tool read_file", "run sampled"]
    for name in ("chat gpt-4o-mini", "execute_tool read_file"):
        assert seen[name][sc.RUN_ID] == run_id
    # The name/project/owner ride on the run's spans until one carrying them has ended:
    # the first LLM span ended before the tool started, so the tool span and the second call
    # (the last one recorded under its name) do not carry them.
    assert {k: seen["execute_tool read_file"].get(k) for k in (sc.RUN_NAME, sc.PROJECT, sc.OWNER)} == \
        {sc.RUN_NAME: None, sc.PROJECT: None, sc.OWNER: None}


def test_llm_and_tool_spans_keep_the_run_stamp_and_first_span_naming(instrumented) -> None:
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(100, 10))))
    client = fake.openai()
    read_file = runtrace.tool(name="read_file")(lambda path: "x = 1")
    with runtrace.run("stamped", project="billing", owner="alice") as run:
        read_file(path="a.py")
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        read_file(path="b.py")
    spans = {s.name + str(i): dict(s.attributes or {}) for i, s in enumerate(instrumented.spans())}
    assert [k for k in spans] == ["execute_tool read_file0", "chat gpt-4o-mini1", "execute_tool read_file2",
                                  "run stamped3"]
    assert {v[sc.RUN_ID] for v in spans.values()} == {run.id}
    named = {k: (v.get(sc.RUN_NAME), v.get(sc.PROJECT), v.get(sc.OWNER)) for k, v in spans.items()}
    assert named == {"execute_tool read_file0": ("stamped", "billing", "alice"),
                     "chat gpt-4o-mini1": (None, None, None),
                     "execute_tool read_file2": (None, None, None),
                     "run stamped3": ("stamped", "billing", "alice")}
    tool_attrs = spans["execute_tool read_file0"]
    assert (tool_attrs[sc.TOOL_REPEAT_COUNT], tool_attrs[sc.TOOL_RESULT_TOKENS]) == (1, 2)
    assert len(tool_attrs[sc.TOOL_RESULT_HASH]) == 16


def test_provider_of_a_client_is_worked_out_once_and_again_when_its_url_changes(
        instrumented, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = endpoints.provider_of_client

    def counting(client: object) -> str:
        calls.append(str(getattr(client, "base_url", "")))
        return real(client)

    monkeypatch.setattr(endpoints, "provider_of_client", counting)
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(100, 10))))
    client = fake.openai(base_url="https://api.openai.test/v1")
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    client.base_url = "https://api.deepseek.com/v1"  # the SDK makes a new URL object: asked again
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert calls == ["https://api.openai.test/v1/", "https://api.deepseek.com/v1/"]
    spans = instrumented.llm_spans()
    assert [(s.attributes or {})[sc.GEN_AI_PROVIDER_NAME] for s in spans] == ["openai"] * 3 + ["deepseek"]
    assert [(s.attributes or {})[sc.SERVER_ADDRESS] for s in spans] == ["api.openai.test"] * 3 + ["api.deepseek.com"]


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "RUNTRACE_", "PYTEST_"))}


def test_duplicate_marker_does_not_inspect_runtrace_run_and_tool_spans(
        instrumented, monkeypatch: pytest.MonkeyPatch) -> None:
    from runtrace import _processors

    inspected: list[str] = []
    real = _processors._is_llm_request

    def counting(span: object) -> bool:
        inspected.append(getattr(span, "name", ""))
        return real(span)  # type: ignore[arg-type]

    monkeypatch.setattr(_processors, "_is_llm_request", counting)
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(100, 10))))
    client = fake.openai()
    read_file = runtrace.tool(name="read_file")(lambda path: "x = 1")
    with runtrace.run("inspected"):
        read_file(path="a.py")
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert inspected == []  # the run and tool spans are never LLM requests; the chat span is runtrace's own
    assert len(instrumented.llm_spans()) == 1
    assert sc.DUPLICATE_OF not in (instrumented.llm_spans()[0].attributes or {})


def test_every_runtrace_llm_instrumentation_is_known_to_the_duplicate_marker() -> None:
    """A provider's own span must count as runtrace's (its tracer is named after its module), or a
    peer's span around it is never marked a duplicate: gemini, bedrock, mistral and litellm were not."""
    from runtrace import _setup, semconv

    llm = {module for name, module, _client in _setup.INSTRUMENTATIONS if name != "mcp"}
    assert llm == set(semconv.RUNTRACE_LLM_SCOPES)
    for module in llm:
        source = Path(importlib.import_module(module).__file__).read_text()  # type: ignore[arg-type]
        assert f'"{module}"' in source


# --- no per-call work that can be done once (issue 14, issue 11 item 1) --------------------

def test_a_tool_call_does_not_bind_its_signature_and_records_what_bind_would(instrumented, monkeypatch):
    """``inspect.Signature.bind`` costs several us a call; a plain signature is matched once, at decoration."""
    import inspect

    from runtrace import detect

    class Repo:
        @runtrace.tool(name="read")
        def read(self, path: str, start: int = 0, *, encoding: str = "utf-8", tool_call_id: str = "") -> str:
            return f"{path}:{start}:{encoding}"

    binds = []
    real_bind = inspect.Signature.bind
    monkeypatch.setattr(inspect.Signature, "bind", lambda self, *a, **k: binds.append(1) or real_bind(self, *a, **k))
    repo = Repo()
    with runtrace.run("tools"):
        repo.read("a.py")
        repo.read("a.py", 3, encoding="latin-1")
        repo.read(encoding="latin-1", start=3, path="a.py", tool_call_id="call_7")
    assert binds == []
    spans = [s for s in instrumented.spans() if s.attributes.get(sc.GEN_AI_TOOL_NAME) == "read"]
    hashes = [s.attributes[sc.TOOL_ARGS_HASH] for s in spans]
    # what Signature.bind named, without self, the call id or the defaults left out
    assert hashes == [detect.stable_hash({"path": "a.py"}),
                      detect.stable_hash({"path": "a.py", "start": 3, "encoding": "latin-1"}),
                      detect.stable_hash({"path": "a.py", "start": 3, "encoding": "latin-1"})]
    assert spans[2].attributes[sc.GEN_AI_TOOL_CALL_ID] == "call_7"


def test_a_call_that_does_not_bind_still_reaches_the_function(instrumented):
    @runtrace.tool
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(TypeError):
        add(1)  # the function says what is wrong, as without runtrace
    assert add(1, b=2) == 3


def test_the_span_is_made_current_without_use_span(instrumented, monkeypatch):
    """``trace.use_span`` is a generator context manager (a few us); the lifecycle attaches the context itself."""
    from opentelemetry import trace

    def refuse(*args, **kwargs):
        raise AssertionError("trace.use_span on the hot path")

    monkeypatch.setattr(trace, "use_span", refuse)
    seen = []
    read_file = runtrace.tool(name="read_file")(lambda path: seen.append(trace.get_current_span()) or "x = 1")
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(100, 10))))
    with runtrace.run("current"):
        read_file(path="a.py")
        fake.openai().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    tool_span = next(s for s in instrumented.spans() if s.name == "execute_tool read_file")
    assert seen[0].get_span_context().span_id == tool_span.context.span_id  # current while the tool ran
    assert len(instrumented.llm_spans()) == 1


# --- metrics: nothing built while nothing listens (issue 14) -------------------------------

_METRICS_CHILD = textwrap.dedent('''
    import json
    from opentelemetry import metrics as metrics_api
    from opentelemetry.metrics._internal import instrument as proxy
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    import runtrace
    from llm_fakes import ChatUsage, FakeLLM, chat_completion, json_reply

    calls = []
    for cls, name in ((proxy._ProxyHistogram, "record"), (proxy._ProxyCounter, "add")):
        def counting(self, amount, attributes=None, context=None, _real=getattr(cls, name), _name=name):
            calls.append(_name)
            return _real(self, amount, attributes, context)
        setattr(cls, name, counting)

    runtrace.instrument(store=False)  # no reader, no endpoint, no MeterProvider: nothing listens
    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(1200, 80))))
    client = fake.openai()
    ask = lambda: client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with runtrace.run("quiet", project="p") as run:
        ask(); ask()
        run.accept()
    before = len(calls)
    memory = InMemoryMetricReader()
    metrics_api.set_meter_provider(MeterProvider(metric_readers=[memory]))  # the application sets one later
    with runtrace.run("heard", project="p") as run:
        ask()
        run.accept()
    points = sorted((m.name, dict(p.attributes).get("gen_ai.token.type", ""), getattr(p, "sum", getattr(p, "value", None)))
                    for rm in memory.get_metrics_data().resource_metrics
                    for sm in rm.scope_metrics for m in sm.metrics for p in m.data.data_points)
    runtrace.uninstrument()
    print(json.dumps({"before": before, "after": calls[before:], "points": points}))
''')


def test_no_metric_is_built_while_no_meter_provider_listens_and_all_once_one_is_set() -> None:
    """The API's proxy records nothing until a provider is set, so runtrace builds nothing for it
    (was: four attribute dicts and four calls an LLM call, one a run); a provider set later hears
    every call from then on. A fresh process: the global MeterProvider is set once per process."""
    proc = subprocess.run([sys.executable, "-c", _METRICS_CHILD], capture_output=True, text=True, timeout=120,
                          env={**_env(), "PYTHONPATH": f"{TESTS.parent / 'src'}:{TESTS}"}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] == 0
    # one call: input and output tokens, its duration, its cost; then the run's outcome
    assert out["after"] == ["record", "record", "record", "add", "add"]
    names = [(name, kind) for name, kind, _value in out["points"]]
    assert names == [("gen_ai.client.operation.duration", ""), ("gen_ai.client.token.usage", "input"),
                     ("gen_ai.client.token.usage", "output"), (sc.METRIC_COST, ""), (sc.METRIC_RUNS, "")]
    values = {(name, kind): value for name, kind, value in out["points"]}
    assert (values[("gen_ai.client.token.usage", "input")], values[("gen_ai.client.token.usage", "output")],
            values[(sc.METRIC_RUNS, "")]) == (1200, 80, 1)


def test_a_completion_is_hashed_once_for_both_detectors_that_key_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop detector (same completion) and the context tracker (the run's own output sent back)
    key a completion by the same hash: one sha256 of the text, not one each."""
    from runtrace import detect

    hashed: list[str] = []
    real = detect.text_hash
    monkeypatch.setattr(detect, "text_hash", lambda text: hashed.append(text) or real(text))
    det = detect.RunDetectors(detect.LoopThresholds(same_completion=2))
    assert det.observe_completion("Step 1 done.") == ()
    found = det.observe_completion("Step 1 done.")
    assert hashed == ["Step 1 done.", "Step 1 done."]  # was four
    assert [(d.kind, d.count) for d in found] == [(detect.KIND_SAME_COMPLETION, 2)]
    # still remembered as the run's own output: sent back, the message is not new (twice sent, twice pending)
    obs = det.observe_prompt([("user", "go on"), ("assistant", "Step 1 done."), ("assistant", "Step 1 done.")])
    assert (obs.messages, obs.new_messages) == (3, 1)


def test_an_llm_call_makes_no_fail_open_guard_and_a_failing_step_still_names_itself(
        instrumented, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The call's guards are made once (per module, per endpoint), not nine to twelve a call."""
    from runtrace import _internal
    from runtrace.instrumentation import _llm

    made: list[str] = []
    real_init = _internal.fail_open.__init__

    def counting(self: _internal.fail_open, where: str) -> None:
        made.append(where)
        real_init(self, where)

    fake = FakeLLM(default=json_reply(chat_completion(model="gpt-4o-mini", usage=ChatUsage(100, 10))))
    client = fake.openai()  # patched now: the endpoints (and their guards) are made here, once
    read_file = runtrace.tool(name="read_file")(lambda path: "x = 1")
    monkeypatch.setattr(_internal.fail_open, "__init__", counting)
    with runtrace.run("guarded"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        read_file(path="a.py")
    assert [w for w in made if w.startswith(("llm span", "openai:", "tool span", "mark duplicate"))] == []

    monkeypatch.setenv("RUNTRACE_FAIL_OPEN_IN_TESTS", "1")
    monkeypatch.setattr(_llm.LLMCall, "_price", lambda self, data, usage: 1 / 0)
    with caplog.at_level("WARNING", logger="runtrace"), runtrace.run("guarded again"):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.usage is not None and reply.usage.prompt_tokens == 100  # the caller's result, untouched
    assert "runtrace: internal error in llm span: pricing" in caplog.text
    span = instrumented.llm_spans()[-1]
    assert (span.attributes or {})[sc.GEN_AI_USAGE_INPUT_TOKENS] == 100
    assert sc.COST_USD not in (span.attributes or {})


def test_a_stream_asks_for_its_first_chunk_time_once_and_records_it(
        instrumented, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk went through ``first_chunk()`` (and a ``chunk()`` call); only the first needs the clock."""
    from llm_fakes import chat_chunks, chat_sse_reply
    from runtrace.instrumentation import _llm

    asked: list[int] = []
    real = _llm.LLMCall.first_chunk
    monkeypatch.setattr(_llm.LLMCall, "first_chunk", lambda self: asked.append(1) or real(self))
    fake = FakeLLM([chat_sse_reply(chat_chunks(model="gpt-4o-mini", pieces=("Hel", "lo", "!"),
                                               usage=ChatUsage(20, 3)))])
    stream = fake.openai().chat.completions.create(model="gpt-4o-mini", stream=True,
                                                   messages=[{"role": "user", "content": "hi"}])
    chunks = list(stream)
    assert len(chunks) >= 4 and asked == [1]  # was one per chunk
    attrs = instrumented.llm_spans()[0].attributes or {}
    assert attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    assert (attrs[sc.GEN_AI_USAGE_INPUT_TOKENS], attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (20, 3)

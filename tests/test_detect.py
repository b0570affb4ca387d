"""Loop and repeated-context detectors: pure Python, exercised without OpenTelemetry."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import sys
import threading
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from runtrace import detect
from runtrace.detect import (
    CALL_KEYS_CAP,
    CHARS_PER_4,
    COMPLETION_KEYS_CAP,
    DETECTIONS_CAP,
    FINGERPRINTS_CAP,
    PENDING_COMPLETIONS_CAP,
    ContextTracker,
    Detection,
    LoopDetector,
    LoopThresholds,
    ReadObservation,
    RepeatedReads,
    RunDetectors,
    canonical_json,
    estimate_tokens,
    stable_hash,
    text_hash,
    uncached_input_share,
)

# --- hashing -----------------------------------------------------------------------


class Args(BaseModel):
    path: str
    lines: tuple[int, ...]


@dataclasses.dataclass
class Point:
    x: int
    y: float


def test_canonical_json_spells_each_value_one_way() -> None:
    assert canonical_json({"b": 1, "a": [1, 2], "c": {"z": None, "y": True}}) == \
        '{"a":[1,2],"b":1,"c":{"y":true,"z":null}}'
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})
    assert canonical_json(("x", 1)) == '["x",1]'
    assert canonical_json({"path": "café/ü.py"}) == '{"path":"café/ü.py"}'
    assert canonical_json({3, 1, 2}) == "[1,2,3]"
    assert canonical_json(frozenset({"b", "a"})) == '["a","b"]'
    # An integral float stays distinct from the int.
    assert canonical_json(1.0) == "1.0" and canonical_json(1) == "1"
    assert stable_hash({"n": 1.0}) != stable_hash({"n": 1})


def test_canonical_json_objects_and_awkward_keys() -> None:
    assert canonical_json(Args(path="a.py", lines=(1, 2))) == '{"lines":[1,2],"path":"a.py"}'
    assert canonical_json({"p": Point(1, 2.5)}) == '{"p":{"x":1,"y":2.5}}'
    assert canonical_json(range(2)) == '"range(0, 2)"'  # repr fallback
    # Keys JSON cannot sort together, or cannot spell: spelled as JSON spells them.
    assert canonical_json({1: "a", "b": 2, (1, 2): 3, None: 4}) == '{"1":"a","[1,2]":3,"b":2,"null":4}'
    assert canonical_json({2: "x", 1: "y"}) == '{"1":"y","2":"x"}'
    # A lone surrogate (possible in text decoded with surrogateescape) still hashes.
    assert len(stable_hash("\udcff")) == 16


def test_canonical_json_circular_value_is_a_clear_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="circular reference"):
        canonical_json(loop)


def test_stable_hash_is_sha256_of_canonical_json_truncated() -> None:
    value = {"path": "src/app.py", "limit": 50}
    expected = hashlib.sha256(b'{"limit":50,"path":"src/app.py"}').hexdigest()[:16]
    assert stable_hash(value) == expected
    assert text_hash("hello") == hashlib.sha256(b"hello").hexdigest()[:16]


# --- token estimation ------------------------------------------------------------------


def test_chars_per_4_rounds_up() -> None:
    assert [CHARS_PER_4.count(t) for t in ("", "a", "abcd", "abcde", "x" * 410)] == [0, 1, 1, 2, 103]


def test_estimate_tokens_uses_the_named_estimator() -> None:
    assert detect.TOKEN_ESTIMATOR in ("tiktoken", "chars/4")
    assert detect.TOKEN_ESTIMATOR == detect.token_estimator().name
    if detect.TOKEN_ESTIMATOR == "chars/4":
        assert estimate_tokens("x" * 410) == 103
    else:  # o200k_base and cl100k_base: "hello", " world"
        assert estimate_tokens("hello world") == 2


def test_probe_without_tiktoken_falls_back_to_chars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import now raises ImportError
    assert detect._probe_estimator() is CHARS_PER_4


def _forbid_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    tiktoken_load = pytest.importorskip("tiktoken.load")
    fetched: list[str] = []

    def no_network(blobpath: str) -> bytes:
        fetched.append(blobpath)
        raise OSError("no network in this test")

    monkeypatch.setattr(tiktoken_load, "read_file", no_network)
    return fetched


def test_probe_with_tiktoken_but_no_cached_encoding_never_goes_online(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched = _forbid_network(monkeypatch)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert detect._probe_estimator() is CHARS_PER_4
    # A corrupt cached file is not trusted either (tiktoken would re-download it).
    for bpe in detect._OFFLINE_BPE:
        (tmp_path / hashlib.sha1(bpe.url.encode()).hexdigest()).write_bytes(b"truncated")
    assert detect._probe_estimator() is CHARS_PER_4
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # caching disabled: always a download
    assert detect._probe_estimator() is CHARS_PER_4
    assert fetched == []


def _tiny_bpe() -> bytes:
    """A real tiktoken BPE file: every byte, then merges he, ll, hell, hello."""
    tokens = [bytes([b]) for b in range(256)] + [b"he", b"ll", b"hell", b"hello"]
    return b"".join(base64.b64encode(t) + b" %d\n" % rank for rank, t in enumerate(tokens))


@pytest.fixture
def tiny_encoding(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A made-up encoding registered with the installed tiktoken and cached under tmp_path."""
    tiktoken_load = pytest.importorskip("tiktoken.load")
    registry = pytest.importorskip("tiktoken.registry")

    data = _tiny_bpe()
    bpe = detect._BpeFile("runtrace_tiny_bpe", "https://example.invalid/runtrace_tiny.tiktoken",
                          hashlib.sha256(data).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    (tmp_path / hashlib.sha1(bpe.url.encode()).hexdigest()).write_bytes(data)

    def construct() -> dict[str, object]:
        return {"name": bpe.encoding, "pat_str": r"\S+|\s+", "special_tokens": {},
                "mergeable_ranks": tiktoken_load.load_tiktoken_bpe(bpe.url, expected_hash=bpe.sha256)}

    registry._find_constructors()
    monkeypatch.setitem(registry.ENCODING_CONSTRUCTORS, bpe.encoding, construct)
    yield bpe
    registry.ENCODINGS.pop(bpe.encoding, None)


def test_probe_loads_a_cached_encoding_offline(tiny_encoding, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched = _forbid_network(monkeypatch)
    estimator = detect._probe_estimator([tiny_encoding])
    assert estimator.name == "tiktoken"
    # "hello" is one merged token, " " one, "world" five single bytes.
    assert estimator.count("hello world") == 7
    assert estimator.count("<|endoftext|>") == 13  # special-token text is plain text here
    assert fetched == []


def test_probe_gives_up_on_a_load_that_hangs(tiny_encoding, monkeypatch: pytest.MonkeyPatch) -> None:
    import tiktoken

    release = threading.Event()

    def hanging_get_encoding(name: str) -> object:
        release.wait()
        raise OSError("released")

    monkeypatch.setattr(tiktoken, "get_encoding", hanging_get_encoding)
    try:
        assert detect._probe_estimator([tiny_encoding], timeout_s=0.05) is CHARS_PER_4
    finally:
        release.set()


def test_uncached_input_share() -> None:
    assert uncached_input_share(1000, 250) == 0.75
    assert uncached_input_share(1000, 1000) == 0.0
    assert uncached_input_share(1000, 0) == 1.0
    assert uncached_input_share(0, 0) is None
    with pytest.raises(ValueError, match="cached_input_tokens=300 exceeds input_tokens=200"):
        uncached_input_share(200, 300)
    with pytest.raises(ValueError, match="must be >= 0"):
        uncached_input_share(-1, 0)


# --- loops ---------------------------------------------------------------------------


def _call(det: LoopDetector, name: str, args: object, result: object) -> list[Detection]:
    return det.observe_tool_call(name, stable_hash(args), stable_hash(result),
                                 args_preview=", ".join(f"{k}={v!r}" for k, v in dict(args).items()))


def test_same_call_flagged_at_exactly_the_third_identical_call() -> None:
    det = LoopDetector()
    args = {"path": "src/app.py"}
    assert _call(det, "read_file", args, "v1") == []
    assert _call(det, "read_file", args, "v1") == []
    third = _call(det, "read_file", args, "v1")
    assert third == [Detection("same_call", 3, "read_file(path='src/app.py') returned the same result 3 times",
                               stable_hash(["read_file", stable_hash(args), stable_hash("v1")]))]
    assert det.call_count("read_file", stable_hash(args), stable_hash("v1")) == 3
    # Reported once per key; the count goes on.
    assert [_call(det, "read_file", args, "v1") for _ in range(5)] == [[]] * 5
    assert det.call_count("read_file", stable_hash(args), stable_hash("v1")) == 8


def test_changed_result_breaks_the_same_call_loop() -> None:
    det = LoopDetector()
    args = {"path": "src/app.py"}
    assert _call(det, "read_file", args, "v1") == []
    assert _call(det, "read_file", args, "v1") == []
    assert _call(det, "read_file", args, "v2") == []  # the file was edited: a different call
    assert _call(det, "read_file", args, "v2") == []
    assert [d.count for d in _call(det, "read_file", args, "v1")] == [3]  # v1 again, third time overall


def test_same_call_without_preview_names_the_tool_and_the_count_only() -> None:
    # No preview is what the instrumentation passes with content capture off: the
    # sentence must not carry anything the tool received, not even its hash.
    det = LoopDetector(LoopThresholds(same_call=2))
    det.observe_tool_call("search", "a1b2c3d4e5f60718", "r")
    [found] = det.observe_tool_call("search", "a1b2c3d4e5f60718", "r")
    assert found.description == "search was called 2 times with the same arguments and returned the same result"


def test_thresholds_are_configurable() -> None:
    det = LoopDetector(LoopThresholds(same_call=5, same_completion=4))
    fired = [bool(det.observe_tool_call("t", "a", "r")) for _ in range(6)]
    assert fired == [False, False, False, False, True, False]
    completions = [det.observe_completion("h") for _ in range(5)]
    assert [len(c) for c in completions] == [0, 0, 0, 1, 0]
    assert completions[3][0].count == 4


@pytest.mark.parametrize("field", ["same_call", "cycle_max_len", "cycle_repeats", "same_completion"])
@pytest.mark.parametrize("bad", [1, 0, True, 2.0])
def test_bad_thresholds_name_the_field(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=f"LoopThresholds.{field} must be an int >= 2"):
        LoopThresholds(**{field: bad})


def _feed(det: LoopDetector, calls: list[str]) -> list[list[Detection]]:
    """One call per letter: the letter is the tool's name, its args and its result."""
    return [det.observe_tool_call(c, f"args-{c}", f"result-{c}") for c in calls]


def _cycles(found: list[list[Detection]]) -> list[tuple[int, Detection]]:
    return [(i + 1, d) for i, ds in enumerate(found) for d in ds if d.kind == "cycle"]


def test_cycle_of_three_flagged_at_the_ninth_call_and_not_the_eighth() -> None:
    det = LoopDetector()
    names = ["search", "read_file", "edit"] * 3
    found = [det.observe_tool_call(n, "{}", f"r-{n}") for n in names]
    assert _cycles(found[:8]) == []
    [(at, cycle)] = _cycles(found)
    assert at == 9
    assert cycle.description == "the cycle search -> read_file -> edit repeated 3 times"
    assert cycle.count == 3
    # Each member is also a call made three times: same_call fires at its third occurrence.
    assert [(i + 1, d.kind) for i, ds in enumerate(found) for d in ds if d.kind == "same_call"] == \
        [(7, "same_call"), (8, "same_call"), (9, "same_call")]


def test_cycle_fires_once_per_occurrence_and_again_after_a_break() -> None:
    det = LoopDetector()
    found = _feed(det, list("ABC" * 10))  # the loop goes on: reported once
    assert [at for at, _ in _cycles(found)] == [9]
    found = _feed(det, ["X"] + list("BCA" * 3))  # broken, then the same loop again (rotated)
    [(at, again)] = _cycles(found)
    assert at == 10
    assert again.key == _cycles(_feed(LoopDetector(), list("ABC" * 3)))[0][1].key
    assert again.description == "the cycle B -> C -> A repeated 3 times"


@pytest.mark.parametrize("period", ["AB", "ABC", "ABCD"])
def test_cycles_of_two_to_four_calls(period: str) -> None:
    found = _feed(LoopDetector(), list(period * 4))
    [(at, cycle)] = _cycles(found)
    assert at == 3 * len(period)
    assert cycle.description == f"the cycle {' -> '.join(period)} repeated 3 times"


def test_cycle_longer_than_the_limit_or_not_distinct_is_not_a_cycle() -> None:
    assert _cycles(_feed(LoopDetector(), list("ABCDE" * 3))) == []
    assert _cycles(_feed(LoopDetector(), list("ABAC" * 3))) == []  # period with a repeated call
    assert [at for at, _ in _cycles(_feed(LoopDetector(LoopThresholds(cycle_max_len=5)),
                                          list("ABCDE" * 3)))] == [15]
    assert [at for at, _ in _cycles(_feed(LoopDetector(LoopThresholds(cycle_repeats=2)),
                                          list("ABC" * 2)))] == [6]


def test_a_changed_result_inside_the_cycle_breaks_it() -> None:
    det = LoopDetector()
    calls = ["A", "B", "C", "A", "B", "C", "A", "B"]
    found = _feed(det, calls)
    found.append(det.observe_tool_call("C", "args-C", "a different result"))
    assert _cycles(found) == []


def test_same_completion_three_times() -> None:
    det = LoopDetector()
    h = text_hash("I will now read the file again.")
    assert det.observe_completion(h) == []
    assert det.observe_completion(text_hash("something else")) == []
    assert det.observe_completion(h) == []
    assert det.observe_completion(h) == [
        Detection("same_completion", 3, "the model returned the same completion 3 times", h)]
    assert det.observe_completion(h) == []


def _reference_cycles(seq: list[str], max_len: int, repeats: int) -> list[int]:
    """The documented rule, recomputed from scratch at every position."""
    fired: list[tuple[int, int]] = []  # (position, period)

    def holds(n: int, k: int) -> bool:
        tail = seq[n - k * repeats:n]
        return len(tail) == k * repeats and len(set(tail[:k])) == k and tail == tail[:k] * repeats

    for n in range(1, len(seq) + 1):
        if fired:
            m, k = fired[-1]
            if all(seq[j] == seq[j - k] for j in range(m, n)):
                continue  # the reported occurrence goes on
        for k in range(2, max_len + 1):
            if holds(n, k):
                fired.append((n, k))
                break
    return [n for n, _ in fired]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("ABCD"), max_size=60), st.integers(2, 4), st.integers(2, 3))
def test_cycles_match_the_reference_rule(seq: list[str], max_len: int, repeats: int) -> None:
    det = LoopDetector(LoopThresholds(cycle_max_len=max_len, cycle_repeats=repeats))
    assert [at for at, _ in _cycles(_feed(det, seq))] == _reference_cycles(seq, max_len, repeats)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("ABCDEF"), max_size=80), st.integers(2, 6))
def test_same_call_fires_once_per_key_that_reaches_n(seq: list[str], n: int) -> None:
    det = LoopDetector(LoopThresholds(same_call=n))
    found = [d for ds in _feed(det, seq) for d in ds if d.kind == "same_call"]
    assert sorted(d.key for d in found) == sorted(
        stable_hash([c, f"args-{c}", f"result-{c}"]) for c in set(seq) if seq.count(c) >= n)


# --- repeated reads ---------------------------------------------------------------------


def test_repeated_reads_with_an_edit_in_between() -> None:
    reads = RepeatedReads()
    args = stable_hash({"path": "src/app.py"})
    v1, v2 = text_hash("def main(): pass\n"), text_hash("def main():\n    return 0\n")
    assert reads.observe("read_file", args, v1, 120) == ReadObservation(False, 1, 0)
    assert reads.observe("read_file", args, v1, 120) == ReadObservation(True, 2, 120)  # unchanged
    assert reads.observe("read_file", args, v2, 130) == ReadObservation(False, 1, 0)  # edited
    assert reads.observe("read_file", args, v2, 130) == ReadObservation(True, 2, 130)
    assert reads.observe("read_file", stable_hash({"path": "b.py"}), v2, 130) == ReadObservation(False, 1, 0)
    assert (reads.repeated_reads, reads.repeated_tokens) == (2, 250)


# --- context re-injection ------------------------------------------------------------

SYSTEM = "You are a coding agent. Use the tools to read, search and edit files in the repository."
TASK = "The test tests/test_billing.py::test_rounding fails intermittently; find the cause and fix it."
FILE = ("def round_cents(amount: float) -> int:\n"
        "    # Floats are not exact; multiplying first loses a cent on some inputs.\n"
        "    return int(amount * 100)\n") * 4  # 572 characters, 143 tokens by chars/4
PLAN = "The bug is in round_cents: int() truncates. I will use round() and add a regression test."


def test_growing_conversation_has_no_reinjection() -> None:
    ctx = ContextTracker(estimator=CHARS_PER_4)
    convo = [("system", SYSTEM), ("user", TASK)]
    first = ctx.observe_prompt(convo)
    assert (first.messages, first.new_messages, first.reinjected_messages) == (2, 2, 0)
    assert first.chars == len(SYSTEM) + len(TASK)
    assert first.estimator == "chars/4"

    ctx.observe_completion_text("")  # the model asked for a tool, with no text
    convo += [("assistant", ""), ("tool", FILE)]
    second = ctx.observe_prompt(convo)
    assert (second.messages, second.new_messages, second.reinjected_messages) == (4, 1, 0)

    ctx.observe_completion_text(PLAN)
    convo += [("assistant", PLAN), ("user", "Go ahead, and run the tests afterwards.")]
    third = ctx.observe_prompt(convo)
    assert (third.messages, third.new_messages, third.reinjected_messages, third.reinjected_tokens) == \
        (6, 1, 0, 0)
    assert third.chars == sum(len(c) for _, c in convo)
    assert third.fingerprint != second.fingerprint
    # The same prompt again (a retry) is all carried over, with the same fingerprint.
    again = ctx.observe_prompt(list(convo))
    assert (again.new_messages, again.reinjected_messages, again.fingerprint) == (0, 0, third.fingerprint)


def test_tool_result_pasted_again_as_a_user_message_is_reinjected() -> None:
    ctx = ContextTracker(estimator=CHARS_PER_4)
    convo = [("system", SYSTEM), ("user", TASK)]
    ctx.observe_prompt(convo)
    convo += [("assistant", ""), ("tool", FILE)]
    ctx.observe_prompt(convo)
    ctx.observe_completion_text(PLAN)
    convo += [("assistant", PLAN), ("user", "Here is the file again:"), ("user", FILE)]
    obs = ctx.observe_prompt(convo)
    assert len(FILE) == 572
    assert (obs.new_messages, obs.reinjected_messages, obs.reinjected_tokens) == (2, 1, 143)
    assert obs.estimator == "chars/4"
    # Carried over from here on: counted once, not on every later call.
    convo += [("assistant", "Done."), ("user", "Thanks")]
    later = ctx.observe_prompt(convo)
    assert (later.new_messages, later.reinjected_messages) == (2, 0)


def test_rebuilt_prompt_with_edited_system_prompt_is_not_reinjection() -> None:
    ctx = ContextTracker(estimator=CHARS_PER_4)
    ctx.observe_prompt([("system", SYSTEM + " Time: 10:00"), ("user", TASK), ("tool", FILE)])
    obs = ctx.observe_prompt([("system", SYSTEM + " Time: 10:01"), ("user", TASK), ("tool", FILE),
                              ("user", "continue")])
    assert (obs.new_messages, obs.reinjected_messages) == (2, 0)


def test_message_whose_role_the_framework_rewrote_is_carried_over() -> None:
    ctx = ContextTracker(estimator=CHARS_PER_4)
    ctx.observe_prompt([("system", SYSTEM), ("user", TASK), ("tool", FILE)])
    obs = ctx.observe_prompt([("system", SYSTEM), ("user", TASK), ("user", FILE), ("user", FILE)])
    assert (obs.new_messages, obs.reinjected_messages, obs.reinjected_tokens) == (1, 1, 143)


class Odd:
    def model_dump(self) -> dict[str, int]:  # not pydantic's: no mode=
        return {"z": 1, "a": 2}


def test_canonical_json_uses_any_model_dump() -> None:
    assert canonical_json([Odd()]) == '[{"a":2,"z":1}]'


def test_content_dropped_then_sent_again_is_reinjected() -> None:
    ctx = ContextTracker(estimator=CHARS_PER_4)
    ctx.observe_prompt([("system", SYSTEM), ("tool", FILE)])
    ctx.observe_prompt([("system", SYSTEM), ("user", TASK)])  # the agent dropped the file
    obs = ctx.observe_prompt([("system", SYSTEM), ("user", TASK), ("tool", FILE)])
    assert (obs.new_messages, obs.reinjected_messages, obs.reinjected_tokens) == (1, 1, 143)


def test_own_completion_comes_back_once_then_counts_as_reinjected() -> None:
    ctx = ContextTracker(estimator=CHARS_PER_4)
    ctx.observe_prompt([("user", TASK)])
    ctx.observe_completion_text(PLAN)
    obs = ctx.observe_prompt([("user", TASK), ("assistant", PLAN)])
    assert (obs.new_messages, obs.reinjected_messages) == (0, 0)
    obs = ctx.observe_prompt([("user", TASK), ("assistant", PLAN), ("user", PLAN)])
    assert (obs.new_messages, obs.reinjected_messages, obs.reinjected_tokens) == (1, 1, (len(PLAN) + 3) // 4)


def test_short_repeated_messages_are_conversation_not_reinjection() -> None:
    ctx = ContextTracker(estimator=CHARS_PER_4)
    ctx.observe_prompt([("user", TASK), ("user", "continue")])
    obs = ctx.observe_prompt([("user", TASK), ("user", "continue"), ("user", "continue")])
    assert (obs.new_messages, obs.reinjected_messages) == (1, 0)


def test_the_same_block_twice_in_one_new_prompt_is_reinjected_once() -> None:
    ctx = ContextTracker(estimator=CHARS_PER_4)
    obs = ctx.observe_prompt([("system", SYSTEM), ("user", FILE), ("user", FILE)])
    assert (obs.new_messages, obs.reinjected_messages, obs.reinjected_tokens) == (3, 1, 143)


# --- properties --------------------------------------------------------------------

_texts = st.text(alphabet="abcdefghij/._ ", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_texts, _texts, _texts), unique=True, max_size=60),
       st.lists(_texts, unique=True, max_size=30))
def test_no_repetition_means_no_detection_and_no_repeat(calls: list[tuple[str, str, str]],
                                                        texts: list[str]) -> None:
    run = RunDetectors(estimator=CHARS_PER_4)
    for name, args, result in calls:
        obs = run.observe_tool_call(name, stable_hash(args), stable_hash(result), result_tokens=10)
        assert obs.detections == () and not obs.read.repeat and obs.read.repeat_count == 1
    convo: list[tuple[str, str]] = []
    for i, text in enumerate(texts):  # a conversation whose every message is distinct
        message = ("user" if i % 2 else "tool", f"message {i}: " + text * 8)
        convo.append(message)
        prompt = run.observe_prompt(convo[-10:])  # with a sliding window, too
        assert prompt.reinjected_messages == 0
        assert run.observe_completion(f"completion {i}: {text}") == ()
    snap = run.snapshot()
    assert (snap.loop_detected, snap.detections, snap.repeated_reads, snap.repeated_tokens,
            snap.reinjected_messages, snap.reinjected_tokens) == (False, (), 0, 0, 0, 0)


# --- the run bundle -------------------------------------------------------------------


def test_run_detectors_snapshot_totals() -> None:
    run = RunDetectors(estimator=CHARS_PER_4)
    for _ in range(3):
        obs = run.observe_tool_call("read_file", stable_hash({"path": "a.py"}), text_hash(FILE),
                                    result_tokens=143, args_preview="path='a.py'")
    assert obs.read == ReadObservation(True, 3, 143)
    assert [d.kind for d in obs.detections] == ["same_call"]
    run.observe_prompt([("tool", FILE)])
    run.observe_prompt([("tool", FILE), ("user", FILE)])
    snap = run.snapshot()
    assert (snap.loop_detected, snap.detections_total, snap.repeated_reads, snap.repeated_tokens,
            snap.reinjected_messages, snap.reinjected_tokens) == (True, 1, 2, 286, 1, 143)
    assert snap.detections[0].description == "read_file(path='a.py') returned the same result 3 times"


def test_run_detectors_keeps_a_bounded_list_of_detections() -> None:
    run = RunDetectors(LoopThresholds(same_call=2))
    for i in range(DETECTIONS_CAP + 30):
        run.observe_tool_call("t", f"args {i}", "r", result_tokens=1)
        run.observe_tool_call("t", f"args {i}", "r", result_tokens=1)
    snap = run.snapshot()
    assert (len(snap.detections), snap.detections_total) == (DETECTIONS_CAP, DETECTIONS_CAP + 30)
    assert snap.detections[-1].description == "t was called 2 times with the same arguments and returned the same result"
    assert snap.detections[-1].key == stable_hash(["t", f"args {DETECTIONS_CAP - 1}", "r"])


def test_run_detectors_counts_exactly_under_threads() -> None:
    run = RunDetectors()
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(500):
            run.observe_tool_call("read_file", "args", "result", result_tokens=7)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = run.snapshot()
    assert (snap.repeated_reads, snap.repeated_tokens, snap.detections_total) == (1999, 1999 * 7, 1)
    assert run.loop.call_count("read_file", "args", "result") == 2000


@pytest.mark.slow
def test_memory_stays_bounded_over_10000_calls() -> None:
    run = RunDetectors(estimator=CHARS_PER_4)
    tracemalloc.start()
    convo: list[tuple[str, str]] = [("system", SYSTEM)]
    for i in range(10_000):
        run.observe_tool_call("read_file", stable_hash({"path": f"f{i}.py"}), text_hash(f"body {i}"),
                              result_tokens=50)
        run.observe_completion(f"step {i}: reading f{i}.py")
        convo.append(("tool", f"contents of f{i}.py " + "x" * 64))
        run.observe_prompt([convo[0]] + convo[-20:])  # an agent keeping the last 20 messages
        sizes = run.sizes()
        assert sizes["loop.calls"] <= CALL_KEYS_CAP and sizes["reads.keys"] <= CALL_KEYS_CAP
        assert sizes["loop.completions"] <= COMPLETION_KEYS_CAP and sizes["loop.window"] <= 12
        assert sizes["context.sent"] <= FINGERPRINTS_CAP and sizes["context.pending"] <= PENDING_COMPLETIONS_CAP
        assert sizes["context.previous"] <= 21 and sizes["detections"] <= DETECTIONS_CAP
    _, peak = tracemalloc.get_traced_memory()
    del convo
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert run.sizes() == {"loop.calls": CALL_KEYS_CAP, "loop.window": 12, "loop.completions": COMPLETION_KEYS_CAP,
                           "reads.keys": CALL_KEYS_CAP, "context.sent": FINGERPRINTS_CAP,
                           "context.pending": PENDING_COMPLETIONS_CAP, "context.previous": 21, "detections": 0}
    assert current < 4_000_000, f"detectors hold {current} bytes after 10,000 calls"
    assert run.snapshot().loop_detected is False

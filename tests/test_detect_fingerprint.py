"""The prompt fingerprint is hashed in one pass (issue 14) and stays byte-identical to the per-message one.

``runtrace.context.fingerprint`` is stored on every LLM span and compared across
runs and releases, so the one-pass hash must give exactly what hashing
``role NUL message-hash NUL`` message by message gave.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from runtrace import detect


def _per_message_fingerprint(messages: list[tuple[str, str]]) -> str:
    """The fingerprint as it was computed before the one-pass hash: one encode and one update a message."""
    whole = hashlib.sha256()
    for role, content in messages:
        fp = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:detect.HASH_CHARS]
        whole.update(f"{role}\x00{fp}\x00".encode("utf-8", "surrogatepass"))
    return whole.hexdigest()[:detect.HASH_CHARS]


PROMPTS: list[list[tuple[str, str]]] = [
    [],
    [("user", "")],
    [("user", "hi")],
    [("system", "You are terse."), ("user", "hi"), ("assistant", "Hello."), ("user", "again")],
    [("user", "same"), ("user", "same"), ("assistant", "same")],
    [("user", "naïve café ✓ 日本語 🙂"), ("tool", "{\"path\": \"a.py\"}")],
    [("user", "lone surrogate \ud800 kept")],  # surrogatepass: what a badly decoded tool result can hold
    [("rôle", "x\x00y"), ("", "empty role")],
    [("user", "x" * 10_000), ("assistant", "y" * 3)],
    [("user", f"message {i}") for i in range(60)],
]


@pytest.mark.parametrize("messages", PROMPTS, ids=range(len(PROMPTS)))
def test_the_one_pass_fingerprint_equals_the_per_message_one(messages: list[tuple[str, str]]) -> None:
    tracker = detect.ContextTracker(estimator=detect.CHARS_PER_4)
    obs = tracker.observe_prompt(messages)
    assert obs.fingerprint == _per_message_fingerprint(messages)
    assert obs.chars == sum(len(c) for _r, c in messages)
    # again, now mostly carried over from the previous prompt (the prefix path), then extended
    again = tracker.observe_prompt([*messages, ("user", "one more")])
    assert again.fingerprint == _per_message_fingerprint([*messages, ("user", "one more")])
    assert again.chars == sum(len(c) for _r, c in messages) + len("one more")


def test_a_known_prompt_keeps_its_fingerprint() -> None:
    obs = detect.ContextTracker(estimator=detect.CHARS_PER_4).observe_prompt(
        [("system", "You are terse."), ("user", "hi")])
    assert (obs.fingerprint, obs.chars) == ("9910280ad602a3cb", 16)  # computed by the code before the change


def test_the_whole_prompt_is_one_sha256_with_no_per_message_update(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    real = hashlib.sha256

    class Counting:
        def __init__(self, data: bytes = b"") -> None:
            self.h = real(data)
            self.updates = 0
            made.append(self)

        def update(self, data: bytes) -> None:
            self.updates += 1
            self.h.update(data)

        def hexdigest(self) -> str:
            return self.h.hexdigest()

    monkeypatch.setattr(detect.hashlib, "sha256", Counting)
    messages = [("system", "s"), ("user", "a"), ("assistant", "b"), ("user", "c")]
    obs = detect.ContextTracker(estimator=detect.CHARS_PER_4).observe_prompt(messages)
    monkeypatch.undo()
    assert obs.fingerprint == _per_message_fingerprint(messages)
    # four message hashes and one of the whole prompt; no update (it was one a message)
    assert (len(made), sum(c.updates for c in made)) == (5, 0)

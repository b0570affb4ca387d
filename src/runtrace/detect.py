"""Runaway-loop and repeated-context detectors for one agent run.

Pure Python: no OpenTelemetry, no I/O (the one exception is the one-off,
offline-only probe for tiktoken's encoding file, see ``token_estimator``).
Instrumentation calls these on the hot path of every LLM and tool call, one
``RunDetectors`` per run, so every observation costs O(1) in the run's length
(O(message count) for a prompt) and every structure has a fixed cap.

Memory bound, per run (whatever the run's length, e.g. a 10,000-call run):

- ``LoopDetector``: at most ``CALL_KEYS_CAP`` (4,096) distinct tool-call keys,
  ``COMPLETION_KEYS_CAP`` (4,096) completion hashes, and a window of
  ``cycle_max_len * cycle_repeats`` (12 by default) recent calls.
- ``RepeatedReads``: at most ``CALL_KEYS_CAP`` (4,096) read keys.
- ``ContextTracker``: at most ``FINGERPRINTS_CAP`` (10,000) sent-content
  fingerprints, ``PENDING_COMPLETIONS_CAP`` (256) completions not yet sent
  back, and references to the previous prompt's messages (one prompt, which
  the caller built anyway).
- ``RunDetectors``: the above plus at most ``DETECTIONS_CAP`` (50) detections
  kept (the total is still counted).

Every cap is an LRU: the least recently seen key is forgotten first, which can
only cause a false negative, never a false positive: a call last seen more than 4,096
distinct calls ago counts as new again. Measured with tracemalloc, the whole
bundle holds about 3.5 MB once every cap is full (a run of 10,000 distinct
calls, completions and prompt messages), and no more however long the run.

Definitions (the contract others code against):

- A tool call's key is ``(name, args_hash, result_hash)``; hashes come from
  ``stable_hash`` / ``text_hash`` at the call site.
- ``same_call`` fires exactly once per key, on its Nth occurrence in the run
  (N = ``LoopThresholds.same_call``, default 3); the count goes on, and
  ``RepeatedReads`` reports it as the repeat count.
- ``cycle`` fires when the last ``k * R`` calls are R repetitions of a period
  of k *distinct* keys, 2 <= k <= ``cycle_max_len`` (k = 1 is ``same_call``),
  R = ``cycle_repeats``. It fires once per occurrence: while each further call
  is the call k positions earlier (the loop keeps going, in any rotation) it
  stays silent; it fires again only after a call breaks the period and a cycle
  (the same or another) then fills ``k * R`` consecutive calls anew. With the
  default thresholds a cycle's members are each repeated R times, so they also
  trip ``same_call``; the cycle detection adds the shape of the loop.
- ``same_completion`` fires exactly once per completion hash, on its Nth
  occurrence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ._forksafe import ForkSafeLock, first_use

__all__ = [
    "CALL_KEYS_CAP", "COMPLETION_KEYS_CAP", "PENDING_COMPLETIONS_CAP", "CHARS_PER_4", "ContextTracker", "DETECTIONS_CAP",
    "Detection", "DetectorSnapshot", "FINGERPRINTS_CAP", "LoopDetector", "LoopThresholds",
    "PromptObservation", "ReadObservation", "RepeatedReads", "RunDetectors", "TOKEN_ESTIMATOR",
    "TokenEstimator", "ToolObservation", "canonical_json", "estimate_tokens", "stable_hash",
    "same_call_sentence", "text_hash", "token_estimator", "uncached_input_share",
]

CALL_KEYS_CAP: Final = 4096
COMPLETION_KEYS_CAP: Final = 4096
FINGERPRINTS_CAP: Final = 10_000
# A completion comes back in the next prompt or two, or never: a short memory is enough.
PENDING_COMPLETIONS_CAP: Final = 256
DETECTIONS_CAP: Final = 50
HASH_CHARS: Final = 16
# Below this many characters a message repeated as new is not counted as
# re-injected: "ok" or "continue" twice is conversation, not waste.
REINJECT_MIN_CHARS: Final = 64
_PREVIEW_CHARS: Final = 120

KIND_SAME_CALL: Final = "same_call"
KIND_CYCLE: Final = "cycle"
KIND_SAME_COMPLETION: Final = "same_completion"


# --- hashing -------------------------------------------------------------------

def _jsonable(obj: Any) -> Any:
    """``json.dumps(default=...)``: turn what JSON cannot spell into what it can."""
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=canonical_json)
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        for kwargs in ({"mode": "json"}, {}):  # pydantic's, then any other model_dump
            try:
                return dump(**kwargs)
            except Exception:  # noqa: BLE001 - fall through to the next spelling
                continue
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    return repr(obj)


def _normalise(obj: Any) -> Any:
    """The slow path, for mappings whose keys JSON cannot sort or spell."""
    if isinstance(obj, Mapping):
        items = sorted(((k if isinstance(k, str) else canonical_json(k), _normalise(v))
                        for k, v in obj.items()),
                       key=lambda kv: (kv[0], canonical_json(kv[1])))
        return dict(items)  # colliding keys: the last in this fixed order wins
    if isinstance(obj, (list, tuple)):
        return [_normalise(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return _normalise(_jsonable(obj))


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)
# builds on every call; made once, since it is stateless (hashing runs on every tool call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def canonical_json(value: Any) -> str:
    """One spelling per value, so equal tool arguments hash equal across calls and processes.

    Sorted keys, no whitespace, UTF-8 left as is, tuples as lists, sets sorted.
    Objects: pydantic ``model_dump(mode="json")``, else ``dataclasses.asdict``,
    else ``repr`` (stable only if the repr is: a default ``<Foo at 0x..>`` is not).
    Non-string keys are spelled as JSON spells them (``1`` -> ``"1"``,
    ``True`` -> ``"true"``), others by their canonical JSON. An integral float
    stays distinct from the int (``1.0`` vs ``1``): the hash describes what was
    sent, and JSON keeps the two apart. NaN and infinities use Python's
    ``NaN``/``Infinity`` spelling.
    """
    try:
        return _CANONICAL.encode(value)
    except TypeError:  # unsortable or non-scalar dict keys
        pass
    except ValueError as exc:
        raise ValueError(f"canonical_json: cannot canonicalise a value with a circular reference "
                         f"({exc})") from exc
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def stable_hash(value: Any) -> str:
    """sha256 of ``canonical_json(value)``, 16 hex chars (64 bits: ample within one run).

    ``_digest``, written out: two a tool call."""
    return hashlib.sha256(canonical_json(value).encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


def text_hash(text: str) -> str:
    """sha256 of the text itself, 16 hex chars: for prompt/completion/result text,
    where JSON-quoting first would only cost time. (``_digest``, written out: every message of every prompt.)"""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


# --- token estimation ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TokenEstimator:
    name: str  # "tiktoken" or "chars/4", recorded next to every estimate
    count: Callable[[str], int]


def _chars_per_4(text: str) -> int:
    return (len(text) + 3) // 4


CHARS_PER_4: Final = TokenEstimator("chars/4", _chars_per_4)


@dataclasses.dataclass(frozen=True)
class _BpeFile:
    """An encoding tiktoken builds from one file, and where tiktoken caches it."""

    encoding: str
    url: str
    sha256: str


# From tiktoken_ext/openai_public.py (tiktoken 0.7-0.14): the file each encoding
# loads and its checksum. o200k_base (GPT-4o and later) first.
_OFFLINE_BPE: Final = (
    _BpeFile("o200k_base", "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
             "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    _BpeFile("cl100k_base", "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
             "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
)
_PROBE_TIMEOUT_S: Final = 5.0


def _tiktoken_cache_path(bpe: _BpeFile) -> str | None:
    """Where tiktoken's ``read_file_cached`` looks for ``bpe``; None when caching is off."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        cache_dir = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        cache_dir = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        import tempfile

        cache_dir = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not cache_dir:
        return None
    return os.path.join(cache_dir, hashlib.sha1(bpe.url.encode()).hexdigest())


def _cached_offline(bpe: _BpeFile) -> bool:
    """True when tiktoken will find ``bpe`` in its cache, intact, and so never go online."""
    path = _tiktoken_cache_path(bpe)
    if path is None or not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest() == bpe.sha256


def _load_with_timeout(get_encoding: Callable[[str], Any], name: str, timeout_s: float) -> Any:
    loaded: list[Any] = []

    def load() -> None:
        try:
            loaded.append(get_encoding(name))
        except Exception:  # noqa: BLE001 - a failed load just means chars/4
            pass

    worker = threading.Thread(target=load, name="runtrace-tiktoken-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return loaded[0] if loaded else None


def _tiktoken_estimator(encoding: Any) -> TokenEstimator:
    encode = encoding.encode_ordinary  # special-token text counts as text, never raises
    return TokenEstimator("tiktoken", lambda text: len(encode(text)))


def _probe_estimator(candidates: Sequence[_BpeFile] = _OFFLINE_BPE,
                     timeout_s: float = _PROBE_TIMEOUT_S) -> TokenEstimator:
    """tiktoken when it is installed and an encoding loads from local files, else chars/4.

    tiktoken downloads an encoding's file on first use unless it is cached, and
    ``requests`` has no timeout: so the file is checked in tiktoken's cache
    first (never a network attempt), and the load itself runs in a daemon thread
    given ``timeout_s``, in case a tiktoken version looks elsewhere.
    """
    try:
        import tiktoken
    except Exception:  # noqa: BLE001 - not installed, or broken: estimate by characters
        return CHARS_PER_4
    for bpe in candidates:
        try:
            if _cached_offline(bpe):
                encoding = _load_with_timeout(tiktoken.get_encoding, bpe.encoding, timeout_s)
                if encoding is not None:
                    return _tiktoken_estimator(encoding)
        except Exception:  # noqa: BLE001 - any failure means: estimate by characters
            continue
    return CHARS_PER_4


_estimator: TokenEstimator | None = None
_estimator_lock = ForkSafeLock()


def token_estimator() -> TokenEstimator:
    """The process's estimator, probed once on first use (not at import)."""
    global _estimator
    if _estimator is None:
        with _estimator_lock, first_use():  # tiktoken's import and load hold off a fork
            if _estimator is None:
                _estimator = _probe_estimator()
    return _estimator


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` by ``TOKEN_ESTIMATOR``: an estimate for any provider's tokenizer."""
    return token_estimator().count(text)


if TYPE_CHECKING:
    TOKEN_ESTIMATOR: str  # "tiktoken" | "chars/4"; see __getattr__


def __getattr__(name: str) -> Any:
    # TOKEN_ESTIMATOR is computed on first access so that importing runtrace
    # never pays for importing tiktoken and loading an encoding.
    if name == "TOKEN_ESTIMATOR":
        return token_estimator().name
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def uncached_input_share(input_tokens: int, cached_input_tokens: int) -> float | None:
    """Share of the input the provider did not serve from its prompt cache; None for no input.

    ``input_tokens`` is the *total* input, cache reads included (OpenAI's count;
    for Anthropic pass input + cache_read + cache_creation tokens).
    """
    if input_tokens < 0 or cached_input_tokens < 0:
        raise ValueError(f"uncached_input_share: token counts must be >= 0, got input_tokens="
                         f"{input_tokens}, cached_input_tokens={cached_input_tokens}")
    if cached_input_tokens > input_tokens:
        raise ValueError(f"uncached_input_share: cached_input_tokens={cached_input_tokens} exceeds "
                         f"input_tokens={input_tokens}; input_tokens must include cache reads "
                         "(Anthropic reports them separately)")
    if input_tokens == 0:
        return None
    return (input_tokens - cached_input_tokens) / input_tokens


# --- loops ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Detection:
    kind: str  # same_call | cycle | same_completion
    count: int  # occurrences (same_call, same_completion) or repetitions (cycle)
    description: str  # a sentence a person reads
    key: str  # stable id of what repeated: equal across rotations of one cycle


def _check_threshold(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(f"LoopThresholds.{name} must be an int >= 2, got {value!r}")


@dataclasses.dataclass(frozen=True)
class LoopThresholds:
    same_call: int = 3
    cycle_max_len: int = 4
    cycle_repeats: int = 3
    same_completion: int = 3

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check_threshold(f.name, getattr(self, f.name))


def _preview(text: str) -> str:
    return text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS - 3] + "..."


CallKey = tuple[str, str, str]


def same_call_sentence(name: str, count: int, args_preview: str = "") -> str:
    """The same-call detection as a sentence; it names argument values only when given a preview.

    The instrumentation passes a preview only when content capture is on: with
    it off the sentence names the tool and the count, nothing the tool received.
    """
    if args_preview:
        return f"{name}({_preview(args_preview)}) returned the same result {count} times"
    return f"{name} was called {count} times with the same arguments and returned the same result"


def _bump(counts: OrderedDict[Any, int], key: Any, cap: int) -> int:
    """Count one more ``key``, most recent last; forget the least recent past ``cap``."""
    count = counts.get(key, 0) + 1
    counts[key] = count
    counts.move_to_end(key)
    if len(counts) > cap:
        counts.popitem(last=False)
    return count


def _compact(key: CallKey) -> int:
    # The counters keep Python's 64-bit hash of the key, not the key: a third of
    # the memory. A collision (~1e-12 among 4,096 keys) is as likely as one of
    # the 64-bit args/result hashes the key is made of.
    return hash(key)


class LoopDetector:
    """Same call N times, short cycles repeating, same completion N times. Not thread-safe
    on its own (``RunDetectors`` locks)."""

    def __init__(self, thresholds: LoopThresholds = LoopThresholds()) -> None:  # noqa: B008 - frozen
        self.thresholds = thresholds
        self._window_len = thresholds.cycle_max_len * thresholds.cycle_repeats
        self._calls: OrderedDict[int, int] = OrderedDict()  # compact key -> count
        self._window: deque[tuple[int, CallKey]] = deque(maxlen=self._window_len)
        self._active_period = 0  # k of the cycle occurrence already reported, 0 if none
        self._completions: OrderedDict[str, int] = OrderedDict()

    def call_count(self, name: str, args_hash: str, result_hash: str) -> int:
        """Occurrences of this exact call so far (0 if never seen or forgotten)."""
        return self._calls.get(_compact((name, args_hash, result_hash)), 0)

    def observe_tool_call(self, name: str, args_hash: str, result_hash: str, *,
                          args_preview: str = "") -> list[Detection]:
        key = (name, args_hash, result_hash)
        compact = _compact(key)
        count = _bump(self._calls, compact, CALL_KEYS_CAP)
        found: list[Detection] = []
        if count == self.thresholds.same_call:
            found.append(Detection(KIND_SAME_CALL, count, same_call_sentence(name, count, args_preview),
                                   stable_hash(list(key))))
        self._window.append((compact, key))
        cycle = self._observe_cycle()
        if cycle is not None:
            found.append(cycle)
        return found

    def _observe_cycle(self) -> Detection | None:
        w = self._window
        n = len(w)
        k = self._active_period
        if k:
            if n > k and w[-1][0] == w[-1 - k][0]:
                return None  # the reported loop goes on
            self._active_period = 0
        if n < 2 or w[-1][0] == w[-2][0]:
            return None  # a period of distinct calls never has two equal calls in a row
        last = w[-1][0]
        repeats = self.thresholds.cycle_repeats
        for k in range(2, self.thresholds.cycle_max_len + 1):
            span = k * repeats
            if span > n:
                break
            if w[-1 - k][0] != last:
                continue  # the cheap test that rejects almost every call
            start = n - span
            period = [w[start + i][0] for i in range(k)]
            if len(set(period)) != k:
                continue
            if all(w[start + i][0] == period[i % k] for i in range(k, span)):
                self._active_period = k
                keys = [w[start + i][1] for i in range(k)]
                names = " -> ".join(key[0] for key in keys)
                canon = min(keys[i:] + keys[:i] for i in range(k))  # one key for every rotation
                return Detection(KIND_CYCLE, repeats, f"the cycle {names} repeated {repeats} times",
                                 stable_hash([list(c) for c in canon]))
        return None

    def observe_completion(self, text_hash: str) -> list[Detection]:
        count = _bump(self._completions, text_hash, COMPLETION_KEYS_CAP)
        if count == self.thresholds.same_completion:
            return [Detection(KIND_SAME_COMPLETION, count,
                              f"the model returned the same completion {count} times", text_hash)]
        return []

    def sizes(self) -> dict[str, int]:
        return {"loop.calls": len(self._calls), "loop.window": len(self._window),
                "loop.completions": len(self._completions)}


# --- repeated reads --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ReadObservation:
    repeat: bool  # an earlier read in this run had the same name, arguments and result
    repeat_count: int  # identical reads so far, this one included
    repeated_tokens: int  # this read's result tokens if it is a repeat, else 0


class RepeatedReads:
    """Re-reading something unchanged: same (name, args, result) as an earlier read.

    A changed result (the file was edited in between) is a new read, not a repeat.
    """

    def __init__(self, cap: int = CALL_KEYS_CAP) -> None:
        self._cap = cap
        self._counts: OrderedDict[int, int] = OrderedDict()  # compact key -> count
        self.repeated_reads = 0
        self.repeated_tokens = 0

    def observe(self, name: str, args_hash: str, result_hash: str, result_tokens: int) -> ReadObservation:
        count = _bump(self._counts, _compact((name, args_hash, result_hash)), self._cap)
        if count == 1:
            return ReadObservation(False, 1, 0)
        self.repeated_reads += 1
        self.repeated_tokens += result_tokens
        return ReadObservation(True, count, result_tokens)

    def sizes(self) -> dict[str, int]:
        return {"reads.keys": len(self._counts)}


# --- context re-injection ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PromptObservation:
    messages: int  # messages in this prompt
    new_messages: int  # not carried over from the previous prompt, not this run's own completions
    reinjected_messages: int  # new messages whose content was already sent earlier in the run
    reinjected_tokens: int  # their estimated tokens
    estimator: str  # how tokens were estimated: tiktoken | chars/4
    fingerprint: str  # hash of the whole prompt (roles and contents, in order)
    chars: int  # characters of content in this prompt


class ContextTracker:
    """Finds content blocks sent to the model again as *new* messages.

    A prompt's message is carried over when it belongs to the previous
    prompt's common prefix, or else when its content matches one of the
    previous prompt's remaining messages (each matched once): an edited system
    prompt, a dropped middle message or a role rewritten by the framework does
    not make the rest look new. A message equal to a completion this run produced is
    not new the first time it comes back. Every other message is new; a new
    message whose content (role aside: a tool result pasted back as a user
    message counts) was sent earlier in the run, or earlier in this same
    prompt, is re-injected, if it has at least ``min_chars`` characters.
    """

    def __init__(self, cap: int = FINGERPRINTS_CAP, estimator: TokenEstimator | None = None,
                 min_chars: int = REINJECT_MIN_CHARS) -> None:
        self._cap = cap
        self._estimator = estimator
        self._min_chars = min_chars
        self._sent: OrderedDict[str, None] = OrderedDict()  # content fingerprints, LRU
        self._pending: OrderedDict[str, int] = OrderedDict()  # completions not yet sent back
        self._previous: list[tuple[str, str, str]] = []  # (role, content, fingerprint)

    @property
    def estimator(self) -> TokenEstimator:
        if self._estimator is None:
            self._estimator = token_estimator()
        return self._estimator

    def observe_completion_text(self, text: str) -> None:
        if not text:
            return
        self.observe_completion_hash(text_hash(text))

    def observe_completion_hash(self, fp: str) -> None:
        """:meth:`observe_completion_text` for a completion already hashed (``text_hash``; not of "")."""
        _bump(self._pending, fp, PENDING_COMPLETIONS_CAP)

    def observe_prompt(self, messages: Sequence[tuple[str, str]]) -> PromptObservation:
        previous = self._previous
        current: list[tuple[str, str, str]] = []
        prefix = chars = 0
        for role, content in messages:  # the common prefix: no hashing, equal strings reuse
            if prefix < len(previous):
                p_role, p_content, p_fp = previous[prefix]
                if p_role == role and p_content == content:
                    current.append((role, content, p_fp))
                    chars += len(content)
                    prefix += 1
                    continue
            break
        leftover: dict[str, int] = {}  # the rest of the previous prompt, by content
        for _role, _content, fp in previous[prefix:]:
            leftover[fp] = leftover.get(fp, 0) + 1
        new = reinjected = reinjected_tokens = 0
        sent = self._sent
        tail: set[str] = set()  # fingerprints sent earlier in this prompt's new part
        for role, content in messages[prefix:]:
            fp = text_hash(content)
            current.append((role, content, fp))
            chars += len(content)
            if leftover.get(fp):
                leftover[fp] -= 1
            elif not content:
                pass
            elif self._pending.get(fp):
                self._pending[fp] -= 1
                if not self._pending[fp]:
                    del self._pending[fp]
            else:
                new += 1
                if len(content) >= self._min_chars and (fp in sent or fp in tail):
                    reinjected += 1
                    reinjected_tokens += self.estimator.count(content)
            tail.add(fp)
        for _role, _content, fp in current:
            if fp in sent:
                sent.move_to_end(fp)
            else:
                sent[fp] = None
        while len(sent) > self._cap:
            sent.popitem(last=False)
        self._previous = current
        # The whole prompt's hash in one pass: one join, one encode, one sha256 (the same bytes as
        # hashing role NUL fp NUL message by message, which was an encode and an update each).
        whole = "".join([f"{role}\x00{fp}\x00" for role, _content, fp in current])
        return PromptObservation(len(current), new, reinjected, reinjected_tokens, self.estimator.name,
                                 hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS],
                                 chars)

    def sizes(self) -> dict[str, int]:
        return {"context.sent": len(self._sent), "context.pending": len(self._pending),
                "context.previous": len(self._previous)}


# --- the bundle a run holds --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ToolObservation:
    detections: tuple[Detection, ...]
    read: ReadObservation


@dataclasses.dataclass(frozen=True)
class DetectorSnapshot:
    loop_detected: bool
    detections: tuple[Detection, ...]  # the first DETECTIONS_CAP
    detections_total: int
    repeated_reads: int
    repeated_tokens: int
    reinjected_messages: int
    reinjected_tokens: int


class RunDetectors:
    """Everything a run detects, behind one lock: tool calls of one run may finish
    on several threads at once.

    ``lock`` is the lock to share (the run's, so that a finished call updates the
    totals and the detectors in one acquisition: the ``*_held`` methods, whose
    caller holds ``lock.raw``); by default a lock of its own.
    """

    def __init__(self, thresholds: LoopThresholds = LoopThresholds(),  # noqa: B008 - frozen
                 estimator: TokenEstimator | None = None, *, lock: ForkSafeLock | None = None) -> None:
        self.loop = LoopDetector(thresholds)
        self.reads = RepeatedReads()
        self.context = ContextTracker(estimator=estimator)
        self._lock = lock if lock is not None else ForkSafeLock()
        self._detections: list[Detection] = []
        self._detections_total = 0
        self._reinjected_messages = 0
        self._reinjected_tokens = 0

    def _record(self, found: list[Detection]) -> tuple[Detection, ...]:
        self._detections_total += len(found)
        room = DETECTIONS_CAP - len(self._detections)
        if room > 0:
            self._detections.extend(found[:room])
        return tuple(found)

    def observe_tool_call(self, name: str, args_hash: str, result_hash: str, *, result_tokens: int,
                          args_preview: str = "") -> ToolObservation:
        with self._lock.raw:
            return self.observe_tool_call_held(name, args_hash, result_hash, result_tokens=result_tokens,
                                               args_preview=args_preview)

    def observe_tool_call_held(self, name: str, args_hash: str, result_hash: str, *, result_tokens: int,
                               args_preview: str = "") -> ToolObservation:
        """:meth:`observe_tool_call` for a caller that holds ``lock.raw``."""
        found = self.loop.observe_tool_call(name, args_hash, result_hash, args_preview=args_preview)
        read = self.reads.observe(name, args_hash, result_hash, result_tokens)
        return ToolObservation(self._record(found), read)

    def observe_completion(self, text: str) -> tuple[Detection, ...]:
        """A completion's text: checked for repetition and remembered as the run's own output."""
        fp = text_hash(text)  # once: the context tracker and the loop detector key it alike
        with self._lock.raw:
            return self.observe_completion_held(text, fp)

    def observe_completion_held(self, text: str, fp: str) -> tuple[Detection, ...]:
        """:meth:`observe_completion` of ``text`` hashed as ``fp`` (``text_hash``), the caller holding ``lock.raw``."""
        if text:
            self.context.observe_completion_hash(fp)
        return self._record(self.loop.observe_completion(fp))

    def observe_prompt(self, messages: Sequence[tuple[str, str]]) -> PromptObservation:
        with self._lock.raw:
            obs = self.context.observe_prompt(messages)
            self._reinjected_messages += obs.reinjected_messages
            self._reinjected_tokens += obs.reinjected_tokens
            return obs

    def snapshot(self) -> DetectorSnapshot:
        with self._lock:
            return DetectorSnapshot(
                loop_detected=self._detections_total > 0,
                detections=tuple(self._detections),
                detections_total=self._detections_total,
                repeated_reads=self.reads.repeated_reads,
                repeated_tokens=self.reads.repeated_tokens,
                reinjected_messages=self._reinjected_messages,
                reinjected_tokens=self._reinjected_tokens,
            )

    def sizes(self) -> dict[str, int]:
        """Lengths of every internal structure, for the memory-bound tests and debugging."""
        with self._lock:
            return {**self.loop.sizes(), **self.reads.sizes(), **self.context.sizes(),
                    "detections": len(self._detections)}

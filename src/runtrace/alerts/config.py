"""The alerts file: a ``[webhook]`` table and ``[[rule]]`` entries, checked once at start.

Every problem is an :class:`AlertsConfigError` whose message names the file,
the rule (by name, or by position when it has none) and the key, so ``serve``
fails before it binds instead of discovering a typo when a run misbehaves.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["RULE_KINDS", "RUN_KINDS", "WINDOW_KINDS", "AlertsConfig", "AlertsConfigError", "Rule", "Webhook",
           "load_alerts", "parse_alerts", "parse_window"]

# when = ... : (the number key it needs, or None)
RUN_KINDS: dict[str, str | None] = {
    "loop_detected": None,
    "budget_stopped": None,
    "run_longer_than": "seconds",
    "run_cost_over": "usd",
}
WINDOW_KINDS: dict[str, str] = {
    "rejected_share_over": "percent",
    "abandoned_share_over": "percent",
    "project_spend_over": "usd",
}
RULE_KINDS = (*RUN_KINDS, *WINDOW_KINDS)
_WINDOW_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_WINDOW_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_RULE_KEYS = {"name", "when", "project", "owner", "seconds", "usd", "percent", "window", "min_runs"}
_WEBHOOK_KEYS = {"url", "timeout_seconds", "max_attempts", "backoff_seconds", "max_backoff_seconds", "headers"}
_TOP_KEYS = {"webhook", "rule", "base_url"}
DEFAULT_MIN_RUNS = 5


class AlertsConfigError(ValueError):
    """The alerts file cannot be used; the message names the file, the rule and the problem."""


@dataclass(frozen=True)
class Webhook:
    url: str
    timeout_seconds: float = 10.0
    max_attempts: int = 20
    backoff_seconds: float = 1.0  # first retry after this; doubled each time
    max_backoff_seconds: float = 600.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rule:
    name: str
    when: str
    project: str | None = None
    owner: str | None = None
    threshold: float | None = None  # seconds, usd or percent, per ``when``
    window_seconds: int | None = None  # window rules only
    window: str | None = None  # as written, for messages
    min_runs: int = DEFAULT_MIN_RUNS  # share rules: finished runs in the window before a share means anything

    @property
    def per_run(self) -> bool:
        return self.when in RUN_KINDS


@dataclass(frozen=True)
class AlertsConfig:
    path: Path
    webhook: Webhook
    rules: tuple[Rule, ...]
    base_url: str | None = None  # the run links in messages; serve's own address when not set


def parse_window(text: str) -> int:
    """'30m', '1h', '1d', '7d', '1w' -> seconds; ValueError otherwise."""
    match = _WINDOW_RE.match(text) if isinstance(text, str) else None
    if not match or int(match[1]) == 0:
        raise ValueError(f"window must be like 30m, 1h, 1d or 7d, got {text!r}")
    return int(match[1]) * _WINDOW_UNITS[match[2]]


def load_alerts(path: str | os.PathLike[str]) -> AlertsConfig:
    """Read and check the alerts file at ``path``."""
    target = Path(path).expanduser()
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlertsConfigError(f"{target}: cannot read the alerts file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise AlertsConfigError(f"{target}: the alerts file is not UTF-8 text ({exc.reason})") from None
    return parse_alerts(text, target)


def parse_alerts(text: str, path: Path) -> AlertsConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AlertsConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise AlertsConfigError(f"{path}: unknown key {unknown[0]!r} (an alerts file has [webhook], [[rule]] "
                                "and an optional base_url)")
    base_url = data.get("base_url")
    if base_url is not None:
        base_url = _http_url(path, "base_url", base_url).rstrip("/")
    webhook = _webhook(path, data.get("webhook"))
    raw_rules = data.get("rule")
    if raw_rules is None:
        raise AlertsConfigError(f"{path}: no [[rule]]: an alerts file needs at least one rule")
    if not isinstance(raw_rules, list):
        raise AlertsConfigError(f"{path}: rule must be an array of tables, written [[rule]]")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules, 1):
        rule = _rule(path, i, raw)
        if rule.name in seen:
            raise AlertsConfigError(f"{path}: rule {rule.name!r} (rule {i}): another rule has this name; "
                                    "names must be unique (a firing is remembered by rule name)")
        seen.add(rule.name)
        rules.append(rule)
    return AlertsConfig(path=path, webhook=webhook, rules=tuple(rules), base_url=base_url)


def _http_url(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AlertsConfigError(f"{path}: {where} must be an http:// or https:// URL, got {value!r}")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AlertsConfigError(f"{path}: {where} must be an http:// or https:// URL, got {value!r}")
    return value.strip()


def _number(path: Path, where: str, key: str, value: Any, *, low: float = 0.0, integer: bool = False,
            strictly: bool = True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if strictly else value >= low) and (not integer or isinstance(value, int))
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f"over {low:g}" if strictly else f"at least {low:g}"
        raise AlertsConfigError(f"{path}: {where}: {key} must be {kind} {bound}, got {value!r}")
    return float(value)


def _webhook(path: Path, raw: Any) -> Webhook:
    if raw is None:
        raise AlertsConfigError(f'{path}: no [webhook]: add [webhook] with url = "https://..."')
    if not isinstance(raw, dict):
        raise AlertsConfigError(f"{path}: webhook must be a table, written [webhook]")
    unknown = sorted(set(raw) - _WEBHOOK_KEYS)
    if unknown:
        raise AlertsConfigError(f"{path}: [webhook]: unknown key {unknown[0]!r} "
                                f"(known: {', '.join(sorted(_WEBHOOK_KEYS))})")
    if "url" not in raw:
        raise AlertsConfigError(f"{path}: [webhook]: url is required")
    url = _http_url(path, "[webhook] url", raw["url"])
    where = "[webhook]"
    headers = raw.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) and "\n" not in v
                                                and "\r" not in v for k, v in headers.items()):
        raise AlertsConfigError(f"{path}: [webhook]: headers must be a table of text values, "
                                'e.g. headers = { Authorization = "Bearer ..." }')
    return Webhook(
        url=url,
        timeout_seconds=_number(path, where, "timeout_seconds", raw.get("timeout_seconds", 10.0)),
        max_attempts=int(_number(path, where, "max_attempts", raw.get("max_attempts", 20), integer=True)),
        backoff_seconds=_number(path, where, "backoff_seconds", raw.get("backoff_seconds", 1.0)),
        max_backoff_seconds=_number(path, where, "max_backoff_seconds", raw.get("max_backoff_seconds", 600.0)),
        headers=tuple(sorted(headers.items())),
    )


def _text(path: Path, where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AlertsConfigError(f"{path}: {where}: {key} must be non-empty text, got {value!r}")
    return value.strip()


def _rule(path: Path, index: int, raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise AlertsConfigError(f"{path}: rule {index}: each [[rule]] must be a table")
    name_given = raw.get("name")
    where = f"rule {name_given!r} (rule {index})" if isinstance(name_given, str) and name_given.strip() \
        else f"rule {index}"
    name = _text(path, where, "name", name_given)
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise AlertsConfigError(f"{path}: {where}: unknown key {unknown[0]!r} "
                                f"(a rule has {', '.join(sorted(_RULE_KEYS))})")
    when = raw.get("when")
    if when not in RULE_KINDS:
        raise AlertsConfigError(f"{path}: {where}: when must be one of {', '.join(RULE_KINDS)}, got {when!r}")
    project = _text(path, where, "project", raw["project"]) if "project" in raw else None
    owner = _text(path, where, "owner", raw["owner"]) if "owner" in raw else None
    needed = RUN_KINDS.get(when) if when in RUN_KINDS else WINDOW_KINDS[when]
    for key in ("seconds", "usd", "percent"):
        if key in raw and key != needed:
            raise AlertsConfigError(f"{path}: {where}: {key} does not apply to when = {when!r}"
                                    + (f" (it takes {needed})" if needed else ""))
    threshold: float | None = None
    if needed is not None:
        if needed not in raw:
            raise AlertsConfigError(f"{path}: {where}: when = {when!r} needs {needed}")
        threshold = _number(path, where, needed, raw[needed], strictly=needed != "percent")
        if needed == "percent" and threshold >= 100:
            raise AlertsConfigError(f"{path}: {where}: percent must be below 100, got {raw[needed]!r}")
    window_seconds: int | None = None
    window: str | None = None
    min_runs = DEFAULT_MIN_RUNS
    if when in WINDOW_KINDS:
        if "window" not in raw:
            raise AlertsConfigError(f'{path}: {where}: when = {when!r} needs a window, e.g. window = "1d"')
        try:
            window_seconds = parse_window(raw["window"])
        except ValueError as exc:
            raise AlertsConfigError(f"{path}: {where}: {exc}") from None
        window = str(raw["window"]).strip()
        if "min_runs" in raw:
            if when == "project_spend_over":
                raise AlertsConfigError(f"{path}: {where}: min_runs applies to the share rules only")
            min_runs = int(_number(path, where, "min_runs", raw["min_runs"], low=1, integer=True, strictly=False))
        if owner is not None:
            raise AlertsConfigError(f"{path}: {where}: owner does not apply to a window rule (it is per project)")
    else:
        for key in ("window", "min_runs"):
            if key in raw:
                raise AlertsConfigError(f"{path}: {where}: {key} applies to window rules only, not {when!r}")
    return Rule(name=name, when=when, project=project, owner=owner, threshold=threshold,
                window_seconds=window_seconds, window=window, min_runs=min_runs)

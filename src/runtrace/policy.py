"""Policies: rules that hold across runs, per project and per owner (docs/policies.md).

A run's :class:`~runtrace.budget.Budget` limits one run. A :class:`Policy`
holds what a team rolls a model out with: spending caps per project and per
owner over UTC days, weeks and months, a cap on runs per day, which tools and
which models a project may use, and a routing rule that keeps dear models off
small calls. This module is the rules and their file format only (pure: no
store, no OpenTelemetry); ``policy_spend`` reads the spend so far and
``policy_enforce`` applies the rules before each call.

A bad policy is configuration, not instrumentation: :class:`PolicyError`
names the file, the key and the problem, and ``instrument()`` raises it.
"""

from __future__ import annotations

import fnmatch
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from . import semconv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["Policy", "PolicyError", "Rules", "Window", "load_policy", "window_bounds"]

Window = Literal["daily", "weekly", "monthly"]
WINDOWS: tuple[Window, ...] = ("daily", "weekly", "monthly")
ACTIONS = ("raise", "warn")

_CAP_KEYS = ("daily_usd", "weekly_usd", "monthly_usd", "runs_per_day")
_RULE_KEYS = frozenset(_CAP_KEYS + ("allowed_tools", "allowed_models", "small_call_max_input_tokens",
                                     "small_call_max_usd_per_mtok", "on_exceed"))
_DEFAULT_KEYS = frozenset({"on_exceed", "cache_seconds"})


class PolicyError(ValueError):
    """A policy that cannot be used: names where (file and key) and what is wrong."""


@dataclass(frozen=True)
class Rules:
    """The rules of one project or one owner; every field is optional (None: no such rule).

    ``allowed_models`` are :mod:`fnmatch` globs matched against the request's
    model name. ``small_call_max_input_tokens`` and ``small_call_max_usd_per_mtok``
    go together: a call estimated at fewer input tokens than the first may not
    use a model whose input price is above the second (USD per million tokens).
    ``on_exceed`` None: the policy's default.
    """

    daily_usd: float | None = None
    weekly_usd: float | None = None
    monthly_usd: float | None = None
    runs_per_day: int | None = None
    allowed_tools: frozenset[str] | None = None
    allowed_models: tuple[str, ...] | None = None
    small_call_max_input_tokens: int | None = None
    small_call_max_usd_per_mtok: float | None = None
    on_exceed: str | None = None

    def usd_cap(self, window: Window) -> float | None:
        value: float | None = getattr(self, f"{window}_usd")
        return value

    @property
    def has_caps(self) -> bool:
        """True when a rule needs the spend or runs so far (and so a store)."""
        return any(getattr(self, key) is not None for key in _CAP_KEYS)

    @property
    def has_small_call_rule(self) -> bool:
        return self.small_call_max_input_tokens is not None and self.small_call_max_usd_per_mtok is not None

    def model_allowed(self, model: str | None) -> bool:
        """Whether ``model`` matches one of ``allowed_models`` (no list: every model; no model: no match)."""
        if self.allowed_models is None:
            return True
        if not model:
            return False
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models)

    def tool_allowed(self, tool: str) -> bool:
        return self.allowed_tools is None or tool in self.allowed_tools


@dataclass(frozen=True)
class Policy:
    """Caps, approved tools and models per project and per owner, for ``instrument(policies=...)``.

    - ``projects`` / ``owners``: name -> :class:`Rules` (or a mapping of the TOML keys).
    - ``on_exceed``: ``"raise"`` (default: :class:`~runtrace.BudgetExceeded` before the call,
      outcome ``budget_stopped``) or ``"warn"`` (a span event and one log line); a rule set
      may override it.
    - ``cache_seconds``: how long the spend read from the store is reused; the enforcement
      lag across processes (this process's own calls count at once).
    - ``clock``: seconds since the epoch, for the UTC windows (tests inject one).
    - ``source``: where the policy came from, named in error messages.
    """

    projects: Mapping[str, Rules] = field(default_factory=dict)
    owners: Mapping[str, Rules] = field(default_factory=dict)
    on_exceed: str = "raise"
    cache_seconds: float = 2.0
    clock: Callable[[], float] = time.time
    source: str = "Policy"

    def __post_init__(self) -> None:
        object.__setattr__(self, "projects", _rules_map(self.projects, "project", self.source))
        object.__setattr__(self, "owners", _rules_map(self.owners, "owner", self.source))
        if self.on_exceed not in ACTIONS:
            raise PolicyError(f"{self.source}: on_exceed must be one of {list(ACTIONS)}, got {self.on_exceed!r}")
        if not _number(self.cache_seconds):
            raise PolicyError(f"{self.source}: cache_seconds must be a non-negative number, "
                              f"got {self.cache_seconds!r}")

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> Policy:
        """Read a policy file (format in docs/policies.md); a :class:`PolicyError` names what is wrong."""
        return load_policy(path, clock=clock)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "policy",
                     clock: Callable[[], float] = time.time) -> Policy:
        """The TOML document's shape as a mapping: ``defaults``, ``project``, ``owner`` tables."""
        unknown = set(data) - {"defaults", "project", "owner"}
        if unknown:
            raise PolicyError(f"{source}: unknown table [{sorted(unknown)[0]}] "
                              "(expected [defaults], [project.NAME], [owner.NAME])")
        defaults = _table(data.get("defaults", {}), "defaults", source)
        bad = set(defaults) - _DEFAULT_KEYS
        if bad:
            raise PolicyError(f"{source}: [defaults] has an unknown key {sorted(bad)[0]!r} "
                              f"(known: {', '.join(sorted(_DEFAULT_KEYS))})")
        projects = _table(data.get("project", {}), "project", source)
        owners = _table(data.get("owner", {}), "owner", source)
        on_exceed = defaults.get("on_exceed", "raise")
        if on_exceed not in ACTIONS:
            raise PolicyError(f"{source}: [defaults] on_exceed must be \"raise\" or \"warn\", got {on_exceed!r}")
        cache_seconds = defaults.get("cache_seconds", 2.0)
        if not _number(cache_seconds):
            raise PolicyError(f"{source}: [defaults] cache_seconds must be a non-negative number, "
                              f"got {cache_seconds!r}")
        return cls(projects={name: parse_rules(body, f"project.{_quoted(name)}", source)
                             for name, body in projects.items()},
                   owners={name: parse_rules(body, f"owner.{_quoted(name)}", source)
                           for name, body in owners.items()},
                   on_exceed=on_exceed, cache_seconds=float(cache_seconds), clock=clock, source=source)

    # -- what applies to a run --------------------------------------------------
    def scopes(self, project: str | None, owner: str | None) -> list[tuple[str, str, Rules]]:
        """(scope, name, rules) of the run's project and owner that the policy names."""
        out: list[tuple[str, str, Rules]] = []
        if project is not None and project in self.projects:
            out.append(("project", project, self.projects[project]))
        if owner is not None and owner in self.owners:
            out.append(("owner", owner, self.owners[owner]))
        return out

    def action(self, rules: Rules) -> str:
        return rules.on_exceed or self.on_exceed

    @property
    def has_caps(self) -> bool:
        return any(r.has_caps for r in (*self.projects.values(), *self.owners.values()))

    def cap_names(self) -> list[str]:
        """``project 'x'``, ``owner 'y'``: the rule sets with caps (for the no-store error)."""
        return ([f"project {name!r}" for name, r in self.projects.items() if r.has_caps]
                + [f"owner {name!r}" for name, r in self.owners.items() if r.has_caps])


_STOP_REASONS: dict[tuple[str, str], str] = {
    ("project", "daily"): semconv.STOP_PROJECT_DAILY_USD, ("project", "weekly"): semconv.STOP_PROJECT_WEEKLY_USD,
    ("project", "monthly"): semconv.STOP_PROJECT_MONTHLY_USD, ("project", "runs"): semconv.STOP_PROJECT_DAILY_RUNS,
    ("owner", "daily"): semconv.STOP_OWNER_DAILY_USD, ("owner", "weekly"): semconv.STOP_OWNER_WEEKLY_USD,
    ("owner", "monthly"): semconv.STOP_OWNER_MONTHLY_USD, ("owner", "runs"): semconv.STOP_OWNER_DAILY_RUNS,
}


def stop_reason(scope: str, window: Window | Literal["runs"]) -> str:
    """``project_daily_usd``, ``owner_weekly_usd``, ``project_daily_runs`` ... (declared in semconv)."""
    return _STOP_REASONS[(scope, window)]


def window_bounds(window: Window, now: float) -> tuple[int, int]:
    """[start, end) in ns since the epoch of the UTC day, ISO week (from Monday) or month holding ``now``."""
    at = datetime.fromtimestamp(now, tz=timezone.utc)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "daily":
        start, end = day, day + timedelta(days=1)
    elif window == "weekly":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return _ns(start), _ns(end)


def _ns(at: datetime) -> int:
    return int((at - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1)) * 1000


# --- parsing -------------------------------------------------------------------------

def load_policy(path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> Policy:
    """Read the TOML policy file at ``path``; :class:`PolicyError` names the file, key and problem."""
    source = str(Path(path).expanduser())
    try:
        with open(source, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise PolicyError(f"policy file {source}: no such file") from None
    except OSError as exc:
        raise PolicyError(f"policy file {source}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {source}: not valid TOML: {exc}") from None
    return Policy.from_mapping(data, source=f"policy file {source}", clock=clock)


def parse_rules(body: Any, where: str, source: str) -> Rules:
    """One ``[project.NAME]`` / ``[owner.NAME]`` table (or a ready :class:`Rules`)."""
    if isinstance(body, Rules):  # made in Python: held to the same checks as a file
        body = {key: value for key, value in vars(body).items() if value is not None}
    table = _table(body, where, source)
    bad = set(table) - _RULE_KEYS
    if bad:
        raise PolicyError(f"{source}: [{where}] has an unknown key {sorted(bad)[0]!r} "
                          f"(known: {', '.join(sorted(_RULE_KEYS))})")

    def err(key: str, what: str) -> PolicyError:
        return PolicyError(f"{source}: [{where}] {key} must be {what}, got {table[key]!r}")

    values: dict[str, Any] = {}
    for key in ("daily_usd", "weekly_usd", "monthly_usd", "small_call_max_usd_per_mtok"):
        if key in table:
            if not _number(table[key]):
                raise err(key, "a non-negative number of US dollars")
            values[key] = float(table[key])
    for key in ("runs_per_day", "small_call_max_input_tokens"):
        if key in table:
            if not (isinstance(table[key], int) and not isinstance(table[key], bool) and table[key] >= 0):
                raise err(key, "a non-negative whole number")
            values[key] = int(table[key])
    for key in ("allowed_tools", "allowed_models"):
        if key in table:
            items = table[key]
            if isinstance(items, str) or not isinstance(items, Iterable) \
                    or not all(isinstance(i, str) and i for i in items):
                raise err(key, "a list of non-empty strings")
            values[key] = frozenset(items) if key == "allowed_tools" else tuple(items)
    if "on_exceed" in table:
        if table["on_exceed"] not in ACTIONS:
            raise err("on_exceed", '"raise" or "warn"')
        values["on_exceed"] = table["on_exceed"]
    if ("small_call_max_input_tokens" in values) != ("small_call_max_usd_per_mtok" in values):
        given, missing = (("small_call_max_input_tokens", "small_call_max_usd_per_mtok")
                          if "small_call_max_input_tokens" in values
                          else ("small_call_max_usd_per_mtok", "small_call_max_input_tokens"))
        raise PolicyError(f"{source}: [{where}] {given} needs {missing} too (the rule is: calls with fewer "
                          "than N input tokens may not use a model priced above $X / MTok input)")
    return Rules(**values)


def _rules_map(rules: Mapping[str, Any], scope: str, source: str) -> dict[str, Rules]:
    if not isinstance(rules, Mapping):
        raise PolicyError(f"{source}: {scope}s must be a mapping of name -> rules, got {type(rules).__name__}")
    out: dict[str, Rules] = {}
    for name, body in rules.items():
        if not isinstance(name, str) or not name:
            raise PolicyError(f"{source}: a {scope} name must be a non-empty string, got {name!r}")
        out[name] = parse_rules(body, f"{scope}.{_quoted(name)}", source)
    return out


def _table(value: Any, where: str, source: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{source}: [{where}] must be a table, got {type(value).__name__} {value!r}")
    return dict(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _quoted(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else f'"{name}"'

"""What points each coding agent at runtrace: Claude Code's env block, Codex's ``[otel]``, Gemini's ``telemetry``.

The settings here are the ones measured to work with Claude Code 2.1.197, Codex
0.171.0 and Gemini CLI 0.61.0 (/work/shared/agent-telemetry/INVENTORY.md), not
just documented ones. Each detail flag that puts user content on the wire is
listed with its privacy trade-off, so ``runtrace agents setup`` can say what
turning it on costs.

Writing merges into the user's own file: other keys and sections stay exactly as
they were, and the old file is kept as ``<name>.runtrace-backup``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from . import semconv as sc

__all__ = ["AGENTS", "Budget", "SetupError", "claude_env", "claude_hook_command", "codex_otel",
           "gemini_telemetry", "merge_claude_settings", "merge_codex_config", "merge_gemini_settings",
           "privacy_notes", "render_codex_otel", "resource_attributes", "settings_path"]

AGENTS = ("claude", "codex", "gemini")
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"  # `runtrace serve` (OTLP/HTTP)
BACKUP_SUFFIX = ".runtrace-backup"
HOOK_MARKER = "agents check claude"  # how an installed runtrace hook is recognised on merge


class SetupError(ValueError):
    """A settings file runtrace cannot merge into safely (nothing was written)."""


@dataclass(frozen=True)
class Budget:
    """A coding-agent session's limits, checked by the PreToolUse hook before each tool call."""

    max_cost_usd: float | None = None
    max_tool_calls: int | None = None
    max_seconds: float | None = None
    allowed_tools: frozenset[str] | None = None  # Claude Code tool names (Read, Grep, Bash ...); None: any

    def is_set(self) -> bool:
        return any(v is not None for v in (self.max_cost_usd, self.max_tool_calls, self.max_seconds,
                                           self.allowed_tools))

    def has_limits(self) -> bool:
        """A limit on the session's figures (cost, tool calls, time), which needs its telemetry."""
        return any(v is not None for v in (self.max_cost_usd, self.max_tool_calls, self.max_seconds))


# What each detail flag puts on the wire (and into the store): said next to the flag.
PRIVACY: Mapping[str, Mapping[str, str]] = {
    "claude": {
        "OTEL_LOG_USER_PROMPTS": "sends the text of every prompt you type (off: only its length, "
                                 "prompt=<REDACTED>)",
        "OTEL_LOG_TOOL_DETAILS": "sends tool inputs: file paths, edit old/new strings, full Bash commands "
                                 "(off: tool names, sizes and durations only; repeated-read detection "
                                 "needs the file paths)",
        "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "sends beta traces: one span per model call and tool call (with "
                                               "OTEL_LOG_USER_PROMPTS the root span carries the prompt)",
    },
    "codex": {
        "log_user_prompt": "sends the text of every prompt (off: [REDACTED]); note that Codex sends tool "
                           "arguments and full tool output in codex.tool_result either way",
        "trace_exporter": "sends about 1,500 internal spans per prompt; only a few are model and tool calls",
    },
    "gemini": {
        "logPrompts": "sends prompts, model responses and tool arguments (off: lengths only); note that "
                      "Gemini puts the full prompt in the resource attribute process.command_args in -p "
                      "mode either way",
        "traces": "sends one trace per model call, with system instructions and messages (--no-traces: off)",
    },
}


_TRACE_FLAGS = frozenset({"CLAUDE_CODE_ENHANCED_TELEMETRY_BETA", "trace_exporter", "traces"})


def privacy_notes(agent: str, *, details: bool, traces: bool = True) -> list[str]:
    """One line per detail flag: on or off in these settings, and what it sends when on."""
    out = []
    for flag, what in PRIVACY[agent].items():
        on = traces if flag in _TRACE_FLAGS else details
        out.append(f"{flag} is {'on' if on else 'off'}; when on it {what}")
    return out


def resource_attributes(project: str | None, owner: str | None) -> str | None:
    """``OTEL_RESOURCE_ATTRIBUTES`` naming the session's project and owner (W3C-baggage-style, escaped)."""
    pairs = [(sc.PROJECT, project), (sc.OWNER, owner)]
    parts = [f"{key}={_escape_resource_value(value)}" for key, value in pairs if value]
    return ",".join(parts) or None


def _escape_resource_value(value: str) -> str:
    # The OTel spec percent-encodes ',', '=', '%' and whitespace in OTEL_RESOURCE_ATTRIBUTES values.
    return "".join(f"%{ord(c):02X}" if c in ",=%; \t\"\\" or ord(c) < 0x20 else c for c in value)


def _endpoint(endpoint: str | None) -> str:
    value = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", value):
        raise SetupError(f"--endpoint must be an http(s):// URL of an OTLP/HTTP receiver, got {value!r}")
    return value


def claude_env(*, endpoint: str | None = None, project: str | None = None, owner: str | None = None,
               details: bool = False, traces: bool = True) -> dict[str, str]:
    """Claude Code's environment: metrics + events (logs) over OTLP/HTTP, beta traces optional."""
    env = {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": _endpoint(endpoint),
        # Events are what runs and budgets are built from: export them every second, not every 5 s.
        "OTEL_LOGS_EXPORT_INTERVAL": "1000",
    }
    if traces:
        env["CLAUDE_CODE_ENHANCED_TELEMETRY_BETA"] = "1"
        env["OTEL_TRACES_EXPORTER"] = "otlp"
    if details:
        env["OTEL_LOG_USER_PROMPTS"] = "1"
        env["OTEL_LOG_TOOL_DETAILS"] = "1"
    attrs = resource_attributes(project, owner)
    if attrs:
        env["OTEL_RESOURCE_ATTRIBUTES"] = attrs
    return env


def codex_otel(*, endpoint: str | None = None, details: bool = False, traces: bool = True,
               environment: str = "runtrace") -> dict[str, Any]:
    """Codex's ``[otel]`` table: each signal's exporter takes the full URL, /v1/<signal> included."""
    base = _endpoint(endpoint)
    table: dict[str, Any] = {
        "environment": environment,
        "log_user_prompt": details,
        "exporter": {"otlp-http": {"endpoint": f"{base}/v1/logs", "protocol": "binary"}},
        # Set explicitly: some builds default the metrics exporter to their own telemetry service.
        "metrics_exporter": {"otlp-http": {"endpoint": f"{base}/v1/metrics", "protocol": "binary"}},
    }
    if traces:
        table["trace_exporter"] = {"otlp-http": {"endpoint": f"{base}/v1/traces", "protocol": "binary"}}
    return table


def gemini_telemetry(*, endpoint: str | None = None, details: bool = False,
                     traces: bool = True) -> dict[str, Any]:
    """Gemini CLI's ``telemetry`` settings: target local, OTLP/HTTP (it appends /v1/<signal> itself)."""
    return {"enabled": True, "target": "local", "otlpEndpoint": _endpoint(endpoint), "otlpProtocol": "http",
            "logPrompts": details, "traces": traces}


def claude_hook_command(store: str, budget: Budget, *, python: str | None = None,
                        policy: str | None = None, project: str | None = None) -> str:
    """The PreToolUse hook's command line: the budget travels in its flags, the store as an absolute path.

    It runs this interpreter (``python -m runtrace.cli``), so the hook works even
    when ``runtrace`` is not on the PATH Claude Code gives its hooks.
    """
    import shlex

    args = ["--store", str(Path(store).expanduser().resolve())]
    if budget.max_cost_usd is not None:
        args += ["--budget-usd", repr(float(budget.max_cost_usd))]
    if budget.max_tool_calls is not None:
        args += ["--max-tool-calls", str(int(budget.max_tool_calls))]
    if budget.max_seconds is not None:
        args += ["--max-seconds", repr(float(budget.max_seconds))]
    if budget.allowed_tools is not None:
        args += ["--allowed-tools", ",".join(sorted(budget.allowed_tools))]
    if policy is not None:
        args += ["--policy", str(Path(policy).expanduser().resolve())]
    if project is not None:
        args += ["--project", project]
    return f"{shlex.quote(python or sys.executable)} -m runtrace.cli {HOOK_MARKER} {shlex.join(args)}"


def claude_hooks_block(command: str) -> dict[str, Any]:
    """The ``PreToolUse`` entry for every tool (matcher ``*``); a 10 s timeout so a stuck hook cannot hang."""
    return {"matcher": "*", "hooks": [{"type": "command", "command": command, "timeout": 10}]}


def claude_prompt_hooks_block(command: str) -> dict[str, Any]:
    """The ``UserPromptSubmit`` entry (that event takes no matcher): caps hold before a prompt costs a call."""
    return {"hooks": [{"type": "command", "command": command, "timeout": 10}]}


def settings_path(agent: str, home: Path) -> Path:
    return {"claude": home / ".claude" / "settings.json", "codex": home / ".codex" / "config.toml",
            "gemini": home / ".gemini" / "settings.json"}[agent]


# --- merging into the user's files -------------------------------------------------------


def _read_json_object(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SetupError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); fix it first, "
                         "nothing was written") from None
    if not isinstance(data, dict):
        raise SetupError(f"{path} must hold a JSON object, not {type(data).__name__}; nothing was written")
    return data


def merge_claude_settings(current: dict[str, Any], env: Mapping[str, str],
                          hook_command: str | None = None) -> dict[str, Any]:
    """``current`` with runtrace's env entries set and (optionally) its PreToolUse and UserPromptSubmit hook
    replaced."""
    out = dict(current)
    old_env = out.get("env", {})
    if not isinstance(old_env, dict):
        raise SetupError(f"settings key 'env' must be an object, not {type(old_env).__name__}")
    out["env"] = {**old_env, **env}
    if hook_command is not None:
        hooks = out.get("hooks", {})
        if not isinstance(hooks, dict):
            raise SetupError(f"settings key 'hooks' must be an object, not {type(hooks).__name__}")
        pre = hooks.get("PreToolUse", [])
        if not isinstance(pre, list):
            raise SetupError("settings key 'hooks.PreToolUse' must be a list")
        kept = [entry for entry in pre if not _is_runtrace_hook(entry)]
        prompt = hooks.get("UserPromptSubmit", [])
        if not isinstance(prompt, list):
            raise SetupError("settings key 'hooks.UserPromptSubmit' must be a list")
        kept_prompt = [entry for entry in prompt if not _is_runtrace_hook(entry)]
        out["hooks"] = {**hooks, "PreToolUse": [*kept, claude_hooks_block(hook_command)],
                        "UserPromptSubmit": [*kept_prompt, claude_prompt_hooks_block(hook_command)]}
    return out


def _is_runtrace_hook(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    inner = entry.get("hooks")
    return isinstance(inner, list) and any(
        isinstance(h, dict) and HOOK_MARKER in str(h.get("command", "")) for h in inner)


def merge_gemini_settings(current: dict[str, Any], telemetry: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(current)
    old = out.get("telemetry", {})
    if not isinstance(old, dict):
        raise SetupError(f"settings key 'telemetry' must be an object, not {type(old).__name__}")
    out["telemetry"] = {**old, **telemetry}
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string: JSON's escapes are valid TOML
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def render_codex_otel(table: Mapping[str, Any]) -> str:
    return "[otel]\n" + "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in table.items())


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _is_otel_header(name: str) -> bool:
    first = name.split(".", 1)[0].strip().strip('"').strip("'")
    return first == "otel"


def merge_codex_config(text: str, table: Mapping[str, Any]) -> str:
    """The config text with its ``[otel]`` section (and ``[otel.*]`` sub-tables) replaced by ``table``.

    Every other line stays as the user wrote it (comments included); the result is
    parsed again to prove nothing else changed.
    """
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"config.toml is not valid TOML ({exc}); fix it first, nothing was written") from None
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        match = _HEADER.match(line)
        if match:
            skipping = _is_otel_header(match[1])
        if not skipping:
            kept.append(line)
    body = "".join(kept)
    if body and not body.endswith("\n"):
        body += "\n"
    result = body + ("\n" if body.strip() else "") + render_codex_otel(table)
    try:
        after = tomllib.loads(result)
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"config.toml sets otel outside an [otel] section ({exc}); move it into [otel] "
                         "first, nothing was written") from None
    before.pop("otel", None)
    after_otel = after.pop("otel", None)
    if before != after or after_otel != dict(table):
        raise SetupError("config.toml could not be merged without changing other settings; nothing was written")
    return result


def write_with_backup(path: Path, text: str) -> Path | None:
    """Write ``text`` to ``path`` (atomically), keeping the old file as ``<name>.runtrace-backup``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    backup: Path | None = None
    if path.exists():
        backup = path.with_name(path.name + BACKUP_SUFFIX)
        shutil.copy2(path, backup)
    tmp = path.with_name(path.name + ".runtrace-tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return backup


def read_json_settings(path: Path) -> dict[str, Any]:
    return _read_json_object(path)

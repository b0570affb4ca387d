"""``runtrace agents``: point Claude Code, Codex or Gemini CLI at runtrace, and hold Claude Code to a budget.

``setup AGENT`` prints exactly what to set (stdout: the settings; stderr: the
privacy note of each detail flag); ``--write`` merges it into the agent's own
settings file, keeping the user's other keys and a backup of the old file.
``hook claude`` installs the budget hook (PreToolUse and UserPromptSubmit);
``check claude`` is that hook (Claude Code runs it before every tool call and
every prompt).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import semconv as sc
from ..agents_setup import (
    AGENTS,
    Budget,
    SetupError,
    claude_env,
    claude_hook_command,
    codex_otel,
    gemini_telemetry,
    merge_claude_settings,
    merge_codex_config,
    merge_gemini_settings,
    privacy_notes,
    read_json_settings,
    render_codex_otel,
    resource_attributes,
    settings_path,
    write_with_backup,
)
from .options import store_option

__all__ = ["agents"]


def _home(home: str | None) -> Path:
    return Path(home).expanduser() if home else Path.home()


def _store_path(store: str | None) -> str:
    from ..store.db import default_path

    return str(Path(store).expanduser().resolve()) if store else str(default_path().resolve())


def _budget(budget_usd: float | None, max_tool_calls: int | None, max_seconds: float | None,
            allowed_tools: str | None = None) -> Budget:
    tools = None
    if allowed_tools is not None:
        tools = frozenset(t.strip() for t in allowed_tools.split(",") if t.strip())
        if not tools:
            raise click.BadParameter("give tool names separated by commas, e.g. Read,Grep,Glob",
                                     param_hint="--allowed-tools")
    return Budget(max_cost_usd=budget_usd, max_tool_calls=max_tool_calls, max_seconds=max_seconds,
                  allowed_tools=tools)


BUDGET_OPTIONS = [
    click.option("--budget-usd", type=click.FloatRange(min=0, min_open=True), help="Claude Code: stop tool "
                 "calls once the session has cost this much (USD)."),
    click.option("--max-tool-calls", type=click.IntRange(min=1), help="Claude Code: stop after this many "
                 "tool calls."),
    click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), help="Claude Code: stop "
                 "tool calls once the session is this old."),
    click.option("--allowed-tools", metavar="NAMES", help="Claude Code: deny every tool but these "
                 "(comma-separated, e.g. Read,Grep,Glob)."),
]
POLICY_OPTIONS = [
    click.option("--policy", "policy_path", type=click.Path(dir_okay=False), envvar=sc.ENV_POLICY,
                 show_envvar=True, help="Claude Code: also apply this policy file's caps, allowed_models and "
                 "allowed_tools (docs/policies.md) for the session's project and owner."),
    click.option("--project", "policy_project", help="Claude Code: the session's project for --policy when "
                 "its telemetry names none."),
]
HOME_OPTION = click.option("--home", type=click.Path(file_okay=False), help="Home directory whose agent "
                           "settings to write [default: $HOME].")
STORE_OPTION = store_option("SQLite store the budget hook reads [default: ~/.runtrace/runtrace.db].")


F = TypeVar("F", bound=Callable[..., Any])


def _with(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def wrap(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func
    return wrap


@click.group("agents")
def agents() -> None:
    """Send coding agents' telemetry (Claude Code, Codex, Gemini CLI) to runtrace."""


@agents.command("setup")
@click.argument("agent", type=click.Choice(AGENTS))
@click.option("--project", metavar="P", help="runtrace.project of every session.")
@click.option("--owner", metavar="O", help="runtrace.owner of every session.")
@click.option("--endpoint", metavar="URL", help="OTLP/HTTP receiver [default: http://127.0.0.1:4318, "
              "`runtrace serve`].")
@click.option("--details/--no-details", default=False, show_default=True,
              help="Also send prompts and tool inputs (see the privacy notes printed).")
@click.option("--traces/--no-traces", default=True, show_default=True, help="Also send the agent's traces.")
@click.option("--write", is_flag=True, help="Merge into the agent's settings file (old file kept as "
              "*.runtrace-backup).")
@HOME_OPTION
@STORE_OPTION
@_with(BUDGET_OPTIONS)
def setup(agent: str, project: str | None, owner: str | None, endpoint: str | None, details: bool,
          traces: bool, write: bool, home: str | None, store_path: str | None, budget_usd: float | None,
          max_tool_calls: int | None, max_seconds: float | None, allowed_tools: str | None) -> None:
    """Print (or with --write apply) the settings that point AGENT at runtrace."""
    budget = _budget(budget_usd, max_tool_calls, max_seconds, allowed_tools)
    if budget.is_set() and agent != "claude":
        raise click.UsageError("budgets (--budget-usd, --max-tool-calls, --max-seconds) need a hook the "
                               "agent runs before each tool call; only Claude Code has one (use `claude`)")
    try:
        if agent == "claude":
            _setup_claude(project, owner, endpoint, details, traces, write, home, store_path, budget)
        elif agent == "codex":
            _setup_codex(project, owner, endpoint, details, traces, write, home)
        else:
            _setup_gemini(project, owner, endpoint, details, traces, write, home)
    except (SetupError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for note in privacy_notes(agent, details=details, traces=traces):
        click.echo(f"privacy: {note}", err=True)


def _report_write(path: Path, backup: Path | None) -> None:
    click.echo(f"wrote {path}" + (f" (previous file kept as {backup})" if backup else ""), err=True)


def _setup_claude(project: str | None, owner: str | None, endpoint: str | None, details: bool, traces: bool,
                  write: bool, home: str | None, store_path: str | None, budget: Budget) -> None:
    env = claude_env(endpoint=endpoint, project=project, owner=owner, details=details, traces=traces)
    hook = claude_hook_command(_store_path(store_path), budget) if budget.is_set() else None
    if write:
        path = settings_path("claude", _home(home))
        merged = merge_claude_settings(read_json_settings(path), env, hook)
        _report_write(path, write_with_backup(path, json.dumps(merged, indent=2, ensure_ascii=False) + "\n"))
        return
    click.echo("# Claude Code: export these (or put them in ~/.claude/settings.json \"env\"; --write does that)")
    for key, value in env.items():
        click.echo(f"export {key}={_shell(value)}")
    if hook is not None:
        block = merge_claude_settings({}, {}, hook)["hooks"]
        click.echo("# budget hook, in ~/.claude/settings.json:")
        click.echo(json.dumps({"hooks": block}, indent=2))


def _setup_codex(project: str | None, owner: str | None, endpoint: str | None, details: bool, traces: bool,
                 write: bool, home: str | None) -> None:
    table = codex_otel(endpoint=endpoint, details=details, traces=traces)
    attrs = resource_attributes(project, owner)
    if write:
        path = settings_path("codex", _home(home))
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        _report_write(path, write_with_backup(path, merge_codex_config(text, table)))
    else:
        click.echo("# Codex: the [otel] section of ~/.codex/config.toml (--write merges it)")
        click.echo(render_codex_otel(table), nl=False)
    if attrs:
        # Codex's [otel] has no resource-attribute setting; its OpenTelemetry SDK reads the standard
        # variable: tests/test_agents_live_cli.py runs Codex 0.171 with it and the run gets project and owner.
        click.echo("# project/owner: Codex's [otel] has no resource-attributes key; export this where codex "
                   "runs (the standard OTel variable, which Codex 0.171 reads: project and owner reach the run):",
                   err=True)
        click.echo(f"export OTEL_RESOURCE_ATTRIBUTES={_shell(attrs)}")


def _setup_gemini(project: str | None, owner: str | None, endpoint: str | None, details: bool, traces: bool,
                  write: bool, home: str | None) -> None:
    telemetry = gemini_telemetry(endpoint=endpoint, details=details, traces=traces)
    attrs = resource_attributes(project, owner)
    if write:
        path = settings_path("gemini", _home(home))
        merged = merge_gemini_settings(read_json_settings(path), telemetry)
        _report_write(path, write_with_backup(path, json.dumps(merged, indent=2, ensure_ascii=False) + "\n"))
    else:
        click.echo("# Gemini CLI: the \"telemetry\" key of ~/.gemini/settings.json (--write merges it)")
        click.echo(json.dumps({"telemetry": telemetry}, indent=2))
    if attrs:
        click.echo("# project/owner: export where gemini runs (settings.json has no key for it):", err=True)
        click.echo(f"export OTEL_RESOURCE_ATTRIBUTES={_shell(attrs)}")


def _shell(value: str) -> str:
    import shlex

    return shlex.quote(value)


@agents.command("hook")
@click.argument("agent", type=click.Choice(["claude"]))
@HOME_OPTION
@STORE_OPTION
@_with(BUDGET_OPTIONS)
@_with(POLICY_OPTIONS)
def hook(agent: str, home: str | None, store_path: str | None, budget_usd: float | None,
         max_tool_calls: int | None, max_seconds: float | None, allowed_tools: str | None,
         policy_path: str | None, policy_project: str | None) -> None:
    """Install Claude Code's budget hook (PreToolUse and UserPromptSubmit) in ~/.claude/settings.json
    (replaces an older one)."""
    budget = _budget(budget_usd, max_tool_calls, max_seconds, allowed_tools)
    if not budget.is_set() and policy_path is None:
        raise click.UsageError("give at least one limit: --budget-usd, --max-tool-calls, --max-seconds, "
                               "--allowed-tools or --policy")
    if policy_path is not None:
        _load_policy(policy_path)  # a bad file fails here, not in every hook run
    path = settings_path(agent, _home(home))
    try:
        merged = merge_claude_settings(read_json_settings(path), {},
                                       claude_hook_command(_store_path(store_path), budget, policy=policy_path,
                                                           project=policy_project))
        if not merged["env"]:
            del merged["env"]
        _report_write(path, write_with_backup(path, json.dumps(merged, indent=2, ensure_ascii=False) + "\n"))
    except (SetupError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("note: the budget is checked against the telemetry received so far; it arrives with the "
               "agent's export interval, so a stop can come a few seconds late", err=True)


@agents.command("check")
@click.argument("agent", type=click.Choice(["claude"]))
@STORE_OPTION
@_with(BUDGET_OPTIONS)
@_with(POLICY_OPTIONS)
def check(agent: str, store_path: str | None, budget_usd: float | None, max_tool_calls: int | None,
          max_seconds: float | None, allowed_tools: str | None, policy_path: str | None,
          policy_project: str | None) -> None:
    """The PreToolUse / UserPromptSubmit hook: read the hook's JSON on stdin, deny the tool call (or block the
    prompt) when the session is over budget, its project or owner over a policy cap, its model not an allowed
    one, or the tool not an allowed one.

    Never fails Claude Code: on any error the call is allowed (exit 0) and the error goes to stderr.
    """
    try:
        decision = _check(store_path, _budget(budget_usd, max_tool_calls, max_seconds, allowed_tools),
                          policy_path, policy_project)
    except Exception as exc:  # the hook must never break the agent
        click.echo(f"runtrace budget hook: {type(exc).__name__}: {exc}; allowing the tool call", err=True)
        return
    if decision is not None:
        click.echo(decision)


def _load_policy(path: str) -> Any:
    from ..policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from None


def _check(store_path: str | None, budget: Budget, policy_path: str | None = None,
           project: str | None = None) -> str | None:
    from ..agents_budget import EVENTS, PRE_TOOL_USE, check_session, deny_output
    from ..policy import load_policy
    from ..store.db import Store
    from ..store.errors import StoreNotFoundError

    payload = json.loads(sys.stdin.read() or "{}")
    session_id = payload.get("session_id") if isinstance(payload, dict) else None
    if not isinstance(session_id, str) or not session_id:
        raise ValueError("hook input has no session_id")
    event = payload.get("hook_event_name") or PRE_TOOL_USE
    if event not in EVENTS:
        click.echo(f"runtrace budget hook: {event!r} is not an event it checks ({', '.join(EVENTS)}); allowing",
                   err=True)
        return None
    policy = load_policy(policy_path) if policy_path else None
    if not budget.is_set() and policy is None:
        return None
    tool_name = payload.get("tool_name") if event == PRE_TOOL_USE else None
    tool_name = tool_name if isinstance(tool_name, str) and tool_name else None
    path = store_path or os.environ.get(sc.ENV_STORE)
    try:
        store: Store | None = Store.open(path, create=False)
    except StoreNotFoundError:
        store = None  # nothing recorded yet: only the tool lists apply
    try:
        decision = check_session(store, session_id, budget, tool_name=tool_name, policy=policy, project=project,
                                 event=event)
    finally:
        if store is not None:
            store.close()
    if decision.warning is not None:
        click.echo(f"runtrace budget hook: warning (allowed, on_exceed=warn): {decision.warning}", err=True)
    if decision.allow or decision.reason is None:
        return None
    what = payload.get("tool_name", "a tool call") if event == PRE_TOOL_USE else "the prompt"
    click.echo(f"runtrace budget hook: denied {what}: {decision.reason}", err=True)
    return deny_output(decision.reason, event)

"""`runtrace agents setup claude|codex|gemini`: exactly the settings measured to work, merged without loss."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from runtrace.cli import main


def cli(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


CLAUDE_ENV = {
    "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://10.0.0.5:4318",
    "OTEL_LOGS_EXPORT_INTERVAL": "1000",
    "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "1",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_RESOURCE_ATTRIBUTES": "runtrace.project=billing,runtrace.owner=alice%20b",
}


def test_claude_setup_prints_the_exports_and_the_privacy_trade_offs() -> None:
    code, out, err = cli("agents", "setup", "claude", "--project", "billing", "--owner", "alice b",
                         "--endpoint", "http://10.0.0.5:4318/")
    assert code == 0
    exports = [line for line in out.splitlines() if line.startswith("export ")]
    assert exports == [f"export {k}={v}" for k, v in CLAUDE_ENV.items()]
    assert "OTEL_LOG_USER_PROMPTS" not in out  # details are off unless asked for
    assert "privacy: OTEL_LOG_USER_PROMPTS is off; when on it sends the text of every prompt" in err
    assert "privacy: OTEL_LOG_TOOL_DETAILS is off; when on it sends tool inputs" in err
    assert "privacy: CLAUDE_CODE_ENHANCED_TELEMETRY_BETA is on" in err


def test_claude_setup_details_adds_both_detail_flags() -> None:
    code, out, err = cli("agents", "setup", "claude", "--details", "--no-traces")
    assert code == 0
    assert "export OTEL_LOG_USER_PROMPTS=1" in out and "export OTEL_LOG_TOOL_DETAILS=1" in out
    assert "OTEL_TRACES_EXPORTER" not in out
    assert "export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318" in out
    assert "OTEL_RESOURCE_ATTRIBUTES" not in out
    assert "OTEL_LOG_USER_PROMPTS is on" in err and "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA is off" in err


def test_claude_write_merges_env_keeps_other_keys_and_backs_up(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    old = {"model": "opus", "env": {"FOO": "bar", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://old:4318"},
           "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}],
                     "Stop": [{"hooks": [{"type": "command", "command": "notify.sh"}]}]}}
    settings.write_text(json.dumps(old))
    code, out, err = cli("agents", "setup", "claude", "--write", "--home", str(tmp_path), "--project", "billing",
                         "--owner", "alice b", "--endpoint", "http://10.0.0.5:4318")
    assert code == 0, err
    assert out == ""
    new = json.loads(settings.read_text())
    assert new["model"] == "opus"
    assert new["env"] == {"FOO": "bar", **CLAUDE_ENV}
    assert new["hooks"] == old["hooks"]  # no budget given: no hook touched
    backup = settings.with_name("settings.json.runtrace-backup")
    assert json.loads(backup.read_text()) == old
    assert f"wrote {settings}" in err


def test_claude_write_with_budget_installs_one_hook_and_replaces_it_on_rerun(tmp_path: Path) -> None:
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    guard = {"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}
    settings.write_text(json.dumps({"hooks": {"PreToolUse": [guard]}}))
    store = tmp_path / "rt.db"
    for limit in ("5", "7"):
        code, _, err = cli("agents", "setup", "claude", "--write", "--home", str(tmp_path), "--store", str(store),
                           "--budget-usd", "2.5", "--max-tool-calls", limit)
        assert code == 0, err
    pre = json.loads(settings.read_text())["hooks"]["PreToolUse"]
    assert pre[0] == guard
    assert len(pre) == 2
    assert pre[1]["matcher"] == "*"
    (hook,) = pre[1]["hooks"]
    assert hook["type"] == "command" and hook["timeout"] == 10
    assert hook["command"] == (f"{sys.executable} -m runtrace.cli agents check claude --store {store.resolve()} "
                               "--budget-usd 2.5 --max-tool-calls 7")


def test_budgets_are_refused_for_agents_without_a_hook() -> None:
    result = CliRunner().invoke(main, ["agents", "setup", "codex", "--max-tool-calls", "3"])
    assert result.exit_code == 2
    assert "only Claude Code has one" in result.stderr


def test_bad_endpoint_and_broken_settings_are_one_line_errors_and_write_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["agents", "setup", "gemini", "--endpoint", "localhost:4318"])
    assert result.exit_code == 1
    assert "--endpoint must be an http(s):// URL" in result.stderr
    settings = tmp_path / ".claude" / "settings.json"
    settings.parent.mkdir()
    settings.write_text('{"env": {"A": 1},,}')
    result = CliRunner().invoke(main, ["agents", "setup", "claude", "--write", "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{settings} is not valid JSON" in result.stderr
    assert settings.read_text() == '{"env": {"A": 1},,}'
    assert not settings.with_name("settings.json.runtrace-backup").exists()


CODEX_CONFIG = """\
# my codex config
model = "gpt-5-codex"   # keep this comment

[model_providers.fake]
name = "Fake"
base_url = "http://127.0.0.1:8089/v1"

[otel]
environment = "old"
exporter = "none"

[otel.extra]
x = 1

[profiles.fast]
model = "gpt-5-mini"
"""

EXPECTED_OTEL = {
    "environment": "runtrace",
    "log_user_prompt": False,
    "exporter": {"otlp-http": {"endpoint": "http://10.0.0.5:4318/v1/logs", "protocol": "binary"}},
    "metrics_exporter": {"otlp-http": {"endpoint": "http://10.0.0.5:4318/v1/metrics", "protocol": "binary"}},
    "trace_exporter": {"otlp-http": {"endpoint": "http://10.0.0.5:4318/v1/traces", "protocol": "binary"}},
}


def test_codex_write_replaces_only_the_otel_section(tmp_path: Path) -> None:
    config = tmp_path / ".codex" / "config.toml"
    config.parent.mkdir()
    config.write_text(CODEX_CONFIG)
    code, out, err = cli("agents", "setup", "codex", "--write", "--home", str(tmp_path),
                         "--endpoint", "http://10.0.0.5:4318")
    assert code == 0, err
    text = config.read_text()
    parsed = tomllib.loads(text)
    assert parsed["otel"] == EXPECTED_OTEL
    before = tomllib.loads(CODEX_CONFIG)
    del before["otel"], parsed["otel"]
    assert parsed == before
    # The user's other lines, comments included, are untouched.
    assert text.startswith('# my codex config\nmodel = "gpt-5-codex"   # keep this comment\n')
    assert '[profiles.fast]\nmodel = "gpt-5-mini"\n' in text
    assert "[otel.extra]" not in text and 'environment = "old"' not in text
    assert config.with_name("config.toml.runtrace-backup").read_text() == CODEX_CONFIG


def test_codex_print_is_a_valid_otel_section_and_new_file_write(tmp_path: Path) -> None:
    code, out, err = cli("agents", "setup", "codex", "--details", "--endpoint", "http://10.0.0.5:4318",
                         "--project", "billing")
    assert code == 0
    section = "\n".join(line for line in out.splitlines() if not line.startswith(("#", "export ")))
    assert tomllib.loads(section)["otel"] == {**EXPECTED_OTEL, "log_user_prompt": True}
    assert "export OTEL_RESOURCE_ATTRIBUTES=runtrace.project=billing" in out
    assert "not verified" not in err
    assert "(the standard OTel variable, which Codex 0.171 reads: project and owner reach the run):" in err
    assert "log_user_prompt is on" in err
    code, _, err = cli("agents", "setup", "codex", "--write", "--home", str(tmp_path), "--no-traces")
    assert code == 0, err
    otel = tomllib.loads((tmp_path / ".codex" / "config.toml").read_text())["otel"]
    assert "trace_exporter" not in otel
    assert otel["exporter"] == {"otlp-http": {"endpoint": "http://127.0.0.1:4318/v1/logs", "protocol": "binary"}}


def test_codex_write_refuses_a_config_it_cannot_parse(tmp_path: Path) -> None:
    config = tmp_path / ".codex" / "config.toml"
    config.parent.mkdir()
    config.write_text("model = \n")
    result = CliRunner().invoke(main, ["agents", "setup", "codex", "--write", "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert "config.toml is not valid TOML" in result.stderr
    assert config.read_text() == "model = \n"


def test_gemini_write_merges_telemetry_and_keeps_the_rest(tmp_path: Path) -> None:
    settings = tmp_path / ".gemini" / "settings.json"
    settings.parent.mkdir()
    old = {"security": {"auth": {"selectedType": "gemini-api-key"}},
           "telemetry": {"enabled": False, "outfile": "/tmp/t.log"}}
    settings.write_text(json.dumps(old))
    code, out, err = cli("agents", "setup", "gemini", "--write", "--home", str(tmp_path), "--owner", "bob")
    assert code == 0, err
    new = json.loads(settings.read_text())
    assert new["security"] == old["security"]
    assert new["telemetry"] == {"enabled": True, "target": "local", "otlpEndpoint": "http://127.0.0.1:4318",
                                "otlpProtocol": "http", "logPrompts": False, "traces": True,
                                "outfile": "/tmp/t.log"}
    assert "export OTEL_RESOURCE_ATTRIBUTES=runtrace.owner=bob" in out
    assert "logPrompts is off" in err and "process.command_args" in err

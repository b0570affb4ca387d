"""The CLI against hostile span values, broken store files, and an 80-column terminal (issue 9: 10, 11, 13)."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from runtrace.cli import main
from runtrace.server.app import create_app
from runtrace.store.db import Store
from runtrace.store.errors import ForeignStoreError, StoreReadOnlyError
from runtrace.store.migrations import APPLICATION_ID, schema_version
from store_helpers import llm, run_span
from test_server_support import running_server

MARKUP_NAME = "[/]"
LINK_NAME = "[link=https://evil.example]click me[/link]"
ANSI_NAME = "\x1b[31mr\x1b[0m\x1b]8;;h://e\x07x\x1b]8;;\x07"  # SGR colour, then an OSC-8 link
ANSI_SHOWN = "?[31mr?[0m?]8;;h://e?x?]8;;?"
FORMULA_NAME = '=HYPERLINK("https://evil.example","x")'


def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "80", "RUNTRACE_STORE": None})


def build(path: Path, runs: list[tuple[str, str, str | None, float]]) -> Path:
    """A store with one accepted LLM run per (run id, name, project, cost)."""
    records = []
    for i, (run_id, name, project, cost) in enumerate(runs):
        records.append(run_span(run_id, 0, start_s=i * 10, end_s=i * 10 + 5, name=name, project=project,
                                outcome="accepted"))
        records.append(llm(run_id, 1, start_s=i * 10 + 1, end_s=i * 10 + 2, input_tokens=1000, output_tokens=100,
                           cost=cost, model="gpt-4o", provider="openai"))
    with Store.open(path) as store:
        store.ingest(records)
    return path


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    return build(tmp_path / "hostile.db", [
        ("a1" * 16, MARKUP_NAME, LINK_NAME, 0.25),
        ("b2" * 16, ANSI_NAME, "-2+3", 0.5),
        ("c3" * 16, FORMULA_NAME, "@SUM(A1)", 1.0),
    ])


# --- 10: markup, control characters, formulas --------------------------------------


def test_runs_and_show_print_markup_names_literally(hostile: Path) -> None:
    result = runner().invoke(main, ["runs", "--store", str(hostile)])
    assert result.exit_code == 0, result.output
    assert "│ [/]" in result.stdout
    shown = runner().invoke(main, ["show", "a1a1a1a1", "--store", str(hostile)])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("[/]") == 3  # the name cell, the tree root, and the run span "run [/]"
    assert "\n├── run [/]  5000 ms\n" in shown.stdout


def test_report_shows_link_markup_as_text(hostile: Path) -> None:
    result = runner().invoke(main, ["report", "--by", "project", "--store", str(hostile)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert LINK_NAME in result.stdout


@pytest.mark.parametrize("command", [["runs"], ["show", "b2b2b2b2"], ["reprice", "--model", "gpt-4o-mini"]])
def test_no_escape_sequence_reaches_the_terminal(hostile: Path, command: list[str]) -> None:
    result = runner().invoke(main, [*command, "--store", str(hostile)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert ANSI_SHOWN in result.stdout


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_runs_csv_has_every_field_and_neutralised_formulas(hostile: Path) -> None:
    result = runner().invoke(main, ["runs", "--store", str(hostile), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = _csv(result.stdout)
    assert [(r["id"], r["name"], r["project"], r["cost_usd"], r["outcome"]) for r in rows] == [
        ("c3" * 16, "'" + FORMULA_NAME, "'@SUM(A1)", "1.0", "accepted"),
        ("b2" * 16, ANSI_SHOWN, "'-2+3", "0.5", "accepted"),
        ("a1" * 16, MARKUP_NAME, LINK_NAME, "0.25", "accepted"),
    ]
    as_json = json.loads(runner().invoke(main, ["runs", "--store", str(hostile), "--format", "json"]).stdout)
    assert list(rows[0]) == [f for f in as_json[0] if f in rows[0]]  # same names as the JSON contract


def test_report_and_reprice_csv_neutralise_formulas(hostile: Path) -> None:
    report = _csv(runner().invoke(main, ["report", "--by", "project", "--format", "csv",
                                         "--store", str(hostile)]).stdout)
    assert sorted(r["project"] for r in report) == ["'-2+3", "'@SUM(A1)", "(total)", LINK_NAME]
    reprice = _csv(runner().invoke(main, ["reprice", "--model", "gpt-4o-mini", "--format", "csv",
                                          "--store", str(hostile)]).stdout)
    assert [r["name"] for r in reprice] == ["'" + FORMULA_NAME, ANSI_SHOWN,
                                            MARKUP_NAME]
    assert all(float(r["difference_usd"]) < 0 for r in reprice)  # numbers stay numbers, minus sign and all


# --- 13: 80 columns ----------------------------------------------------------------


def test_runs_table_at_80_columns_keeps_id_name_outcome_cost_whole(tmp_path: Path) -> None:
    path = build(tmp_path / "s.db", [("1234abcd" + "0" * 24, "fix the flaky login test", "web", 0.0123),
                                      ("1234abcd" + "f" * 24, "refactor billing module", "billing", 12.5)])
    result = runner().invoke(main, ["runs", "--store", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    rows = [line for line in lines if "accepted" in line]
    # the ids share 8 characters, so the table shows 9: enough to tell them apart
    assert [line.split("│")[1].strip() for line in rows] == ["1234abcdf", "1234abcd0"]
    assert "refactor billing module" in rows[0] and "$12.50" in rows[0]
    assert "fix the flaky login test" in rows[1] and "$0.0123" in rows[1]
    shown = runner().invoke(main, ["show", "1234abcdf", "--store", str(path), "--format", "json"])
    assert json.loads(shown.stdout)["id"] == "1234abcd" + "f" * 24


def test_demo_twice_says_it_added_to_the_earlier_runs(tmp_path: Path) -> None:
    from runtrace import demo

    store = tmp_path / "d.db"
    first = runner().invoke(main, ["demo", "--store", str(store), "--pace", "0", "--quiet"])
    assert first.exit_code == 0, first.output
    assert "already held" not in first.stderr
    second = runner().invoke(main, ["demo", "--store", str(store), "--pace", "0", "--quiet"])
    assert second.exit_code == 0, second.output
    n = len(demo.SCRIPTS) + 1  # + the multi-provider run
    assert f"already held {n} demo runs from an earlier `runtrace demo`; this one added {n} more" in second.stderr
    assert second.stdout.count("fix flaky test #412") == 1  # the table shows this demo's runs only
    assert "…" not in second.stdout


# --- 11: broken stores -------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 40)


def _truncated(path: Path) -> None:
    build(path, [(f"{i:032x}", f"run {i}", "p", 0.1) for i in range(300)])
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def _too_new(path: Path) -> None:
    build(path, [("a" * 32, "x", "p", 0.1)])
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")


def _foreign(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE spans (id INTEGER PRIMARY KEY, label TEXT)")
        conn.commit()


BROKEN = {
    "garbage": (_garbage, "is not a runtrace store: file is not a database"),
    "truncated": (_truncated, "database disk image is malformed"),
    "too new": (_too_new, f"schema version 99, but this runtrace understands up to version {schema_version()}: upgrade runtrace"),
    "foreign": (_foreign, "another program's SQLite database (tables: spans); runtrace leaves it untouched"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
@pytest.mark.parametrize("command", [["runs"], ["show", "abc"], ["report"], ["reprice", "--model", "gpt-4o"],
                                     ["runs", "--format", "csv"]])
def test_a_broken_store_is_a_one_line_error(tmp_path: Path, kind: str, command: list[str]) -> None:
    make, message = BROKEN[kind]
    path = tmp_path / "broken.db"
    make(path)
    before = path.read_bytes()
    result = runner().invoke(main, [*command, "--store", str(path)])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert path.read_bytes() == before  # nothing written: no tables, no WAL switch, no -wal file
    assert not (tmp_path / "broken.db-wal").exists()


def test_a_foreign_database_never_gets_runtrace_tables(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    _foreign(path)
    with pytest.raises(ForeignStoreError, match="other.db: the file is another program's SQLite database"):
        Store.open(path)  # the writable path the exporter and serve take
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["spans"]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_new_store_carries_runtrace_application_id(tmp_path: Path) -> None:
    path = build(tmp_path / "s.db", [("a" * 32, "x", "p", 0.1)])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID == 0x52545243


def test_a_store_from_before_the_mark_is_recognised_and_marked(tmp_path: Path) -> None:
    path = build(tmp_path / "old.db", [("a" * 32, "x", "p", 0.1)])
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA application_id = 0")
    with Store.open(path) as store:
        assert store.count_runs() == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


@pytest.mark.parametrize("command", [["show", ""], ["show", "   "]])
def test_show_without_an_id_says_so(tmp_path: Path, command: list[str]) -> None:
    path = build(tmp_path / "s.db", [("a" * 32, "x", "p", 0.1)])
    result = runner().invoke(main, [*command, "--store", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert "Invalid value for RUN_ID: give a run id or a unique prefix of one" in result.stderr


@pytest.mark.parametrize("token", ["   ", "", " secret "])
def test_a_blank_or_padded_token_is_refused(tmp_path: Path, token: str) -> None:
    result = runner().invoke(main, ["serve", "--store", str(tmp_path / "s.db"), "--token", token])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert "Error: Invalid value for '--token' (env var: 'RUNTRACE_TOKEN'): the token must be non-empty and " \
           "have no leading or trailing whitespace\n" in result.stderr
    assert not (tmp_path / "s.db").exists()


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written to: a read-only tmpfs mount as root, a chmod 555 folder otherwise."""
    where = tmp_path / "ro"
    where.mkdir()
    source = build(tmp_path / "s.db", [("a" * 32, "read me", "p", 0.25)])
    if os.geteuid() != 0:
        (where / "s.db").write_bytes(source.read_bytes())
        (where / "s.db").chmod(0o444)
        where.chmod(0o555)
        yield where
        where.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)], capture_output=True,
                             timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (where / "s.db").write_bytes(source.read_bytes())
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, timeout=30)
        yield where
    finally:
        subprocess.run(["umount", str(where)], timeout=30)


def test_a_store_on_a_read_only_mount_is_still_readable(read_only_dir: Path) -> None:
    path = read_only_dir / "s.db"
    for command in (["runs", "--format", "json"], ["show", "aaaaaaaa", "--format", "json"],
                    ["report", "--format", "json"], ["reprice", "--model", "gpt-4o-mini", "--format", "json"]):
        result = runner().invoke(main, [*command, "--store", str(path)])
        assert result.exit_code == 0, (command, result.output)
    runs = json.loads(runner().invoke(main, ["runs", "--format", "json", "--store", str(path)]).stdout)
    assert [(r["name"], r["cost_usd"]) for r in runs] == [("read me", 0.25)]
    with Store.open(path, create=False, readonly=None) as store:
        assert store.readonly is True
        with pytest.raises(StoreReadOnlyError, match="opened read-only"):
            store.ingest([])
    assert sorted(p.name for p in read_only_dir.iterdir()) == ["s.db"]


def test_a_store_corrupted_under_serve_is_a_503(tmp_path: Path) -> None:
    path = build(tmp_path / "s.db", [(f"{i:032x}", f"run {i}", "p", 0.1) for i in range(300)])
    with running_server(create_app(path)) as base:
        assert httpx.get(base + "/healthz", timeout=30).status_code == 200  # serving, store open
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.seek(4096)
            f.write(b"\xff" * (size - 4096))
        api = httpx.get(base + "/api/runs", timeout=30)
        page = httpx.get(base + "/", timeout=30)
    assert (api.status_code, api.json()) == (503, {"error": "the store cannot be read right now (see the server log)"})
    assert api.headers["retry-after"] == "5"
    assert page.status_code == 503
    assert "the store cannot be read right now" in page.text


# --- 13: a real way to list the models -------------------------------------------------


def test_prices_list_filters_by_substring_and_glob() -> None:
    rows = _csv(runner().invoke(main, ["prices", "list", "openai:gpt-4o-mini", "--format", "csv"]).stdout)
    assert ("openai", "gpt-4o-mini", "0.15", "0.6") in [
        (r["provider"], r["model"], r["input_usd_per_mtok"], r["output_usd_per_mtok"]) for r in rows]
    assert all("gpt-4o-mini" in r["model"] and r["provider"] == "openai" for r in rows)
    globbed = _csv(runner().invoke(main, ["prices", "list", "anthropic:claude-3-5-sonnet*", "--format",
                                          "csv"]).stdout)
    assert {(r["provider"], r["model"], r["input_usd_per_mtok"]) for r in globbed} >= {
        ("anthropic", "claude-3-5-sonnet", "3.0")}
    assert all(r["model"].startswith("claude-3-5-sonnet") for r in globbed)
    table = runner().invoke(main, ["prices", "list", "openai:gpt-4o-mini"])
    assert table.exit_code == 0
    assert "│ openai   │ gpt-4o-mini " in table.stdout and "0.15 │" in table.stdout
    none = runner().invoke(main, ["prices", "list", "no-such-model-anywhere"])
    assert none.exit_code == 1 and "no model matches 'no-such-model-anywhere'" in none.stderr


def test_reprice_error_names_a_command_that_exists(hostile: Path) -> None:
    result = runner().invoke(main, ["reprice", "--model", "gpt-nonexistent-9", "--store", str(hostile)])
    assert result.exit_code == 1
    assert "list the models that have a price with `runtrace prices list PATTERN`" in result.stderr
    pattern = runner().invoke(main, ["prices", "list", "gpt-4o-mini"])
    assert pattern.exit_code == 0 and "gpt-4o-mini" in pattern.stdout

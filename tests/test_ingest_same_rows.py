"""The faster ingest stores exactly what the ingest before it stored, in every table.

``tests/ingest_corpus.py`` ingests a varied corpus (own, OpenLLMetry, openai-v2
and OpenInference spans, nested duplicates, tool spans, events, unicode,
captured content, out-of-range numbers, verdicts, re-sent spans) in-process and
through the OTLP decode path, and dumps every table. Here it runs once with
this package and once with the package of ``BASELINE`` (the commit before the
issue-14 ingest rewrite: separate adapter/prepare passes, one ``executemany``
per table), each in a subprocess with a hard timeout, and the dumps must be equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "fa46439"  # main when the s8-ingest branch started
CORPUS = Path(__file__).with_name("ingest_corpus.py")


def _dump(src: Path, out: Path) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, str(CORPUS), str(out)], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    data: dict[str, object] = json.loads(out.read_text())
    return data


def _baseline_src(tmp_path: Path) -> Path:
    archive = tmp_path / "baseline.tar"
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), BASELINE,
                               "src/runtrace"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"git is not usable here: {exc}")
    if done.returncode != 0:
        pytest.skip(f"the baseline commit {BASELINE} is not in this clone: {done.stderr.strip()}")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "baseline", filter="data")
    return tmp_path / "baseline" / "src"


def test_every_table_equals_the_baseline_ingest(tmp_path: Path) -> None:
    new = _dump(ROOT / "src", tmp_path / "new.json")
    old = _dump(_baseline_src(tmp_path), tmp_path / "old.json")
    for path in ("in_process", "otlp"):
        new_tables, old_tables = new[path], old[path]
        assert isinstance(new_tables, dict) and isinstance(old_tables, dict)
        assert sorted(new_tables) == sorted(old_tables)
        for table in old_tables:
            assert new_tables[table] == old_tables[table], f"{path}: table {table} differs"


def test_the_corpus_covers_what_it_claims(tmp_path: Path) -> None:
    """The comparison above is only as good as the corpus: it holds each case it names."""
    data = _dump(ROOT / "src", tmp_path / "new.json")
    tables = data["in_process"]
    assert isinstance(tables, dict)
    spans = tables["spans"]
    assert len(spans) == 54  # 3 runs of 14, 2 foreign traces of 5, 2 verdicts; re-sent spans stored once
    attrs = [json.loads(row[21]) for row in spans]  # rowid first, then SPAN_COLUMNS ("attributes" is 21st)
    assert sum(1 for a in attrs if a.get("runtrace.cost.priced_at_ingest")) == 15
    assert sum(1 for a in attrs if "runtrace.ingest.dropped" in a) == 3
    assert sum(1 for a in attrs if a.get("runtrace.source.dialect")) == 9
    assert len(tables["runs"]) == 9
    assert len(tables["span_search_data"]) == 6

"""Names that meant two things (issue 10 item 7) stay meaning one.

A newcomer who greps for ``RunTotals`` or opens ``queries.py`` should land in one
place. This walks src/runtrace with ``ast`` (nothing imported) and fails when one of
the names the issue listed is defined at module level in more than one module, or
when two modules share a file name that the issue listed as confusing.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "runtrace"

ONE_DEFINITION = ("RunTotals", "Detection", "as_str")
# The tool span (tools.ToolCall) and the tool call a model asked for (_llm.RequestedToolCall).
ONE_DEFINITION_IN_INSTRUMENTATION = ("ToolCall",)
ONE_FILE = ("queries.py", "metrics.py")


def _definitions() -> dict[str, list[str]]:
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                where[node.name].append(str(path.relative_to(SRC)))
    return where


def test_each_listed_name_is_defined_in_one_module() -> None:
    where = _definitions()
    doubled = {name: where[name] for name in ONE_DEFINITION if len(where[name]) > 1}
    assert doubled == {}


def test_the_instrumentation_has_one_tool_call_class() -> None:
    where = _definitions()
    doubled = {name: [p for p in where[name] if p.startswith("instrumentation/")]
               for name in ONE_DEFINITION_IN_INSTRUMENTATION}
    assert doubled == {"ToolCall": ["instrumentation/tools.py"]}


def test_each_listed_file_name_exists_once() -> None:
    doubled = {name: sorted(str(p.relative_to(SRC)) for p in SRC.rglob(name)) for name in ONE_FILE}
    assert {name: paths for name, paths in doubled.items() if len(paths) > 1} == {}


def test_the_verbosity_width_constant_is_spelled_right() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in SRC.rglob("*.py"))
    assert "VERBOSITYwIDTH" not in text
    assert "VERBOSITY_WIDTH" in text

"""The doors between the rooms (docs/architecture.md): which part of runtrace may import which.

Read from the source with ``ast`` (function-level imports included, since
runtrace defers heavy imports into functions), so a forbidden import fails
here even when no test happens to execute it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "runtrace"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every runtrace module ``path`` imports, as absolute dotted names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "runtrace" or m.startswith("runtrace.")}


MODULES = {_module_name(p): _imports(p) for p in sorted(SRC.rglob("*.py"))}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _importers_of(room: str) -> dict[str, set[str]]:
    return {m: {i for i in imps if _room(i) == room and _room(m) != room}
            for m, imps in MODULES.items() if any(_room(i) == room for i in imps) and _room(m) != room}


def test_the_source_tree_was_read() -> None:
    assert "runtrace.store.ingest" in MODULES
    assert "runtrace.instrumentation._llm" in MODULES
    assert "runtrace.semconv" in MODULES["runtrace.store.ingest"]


def test_only_instrument_imports_the_instrumentations() -> None:
    # instrument() patches; the package re-exports the public @runtrace.tool decorator (which lives
    # with the tool instrumentation); the demo is an example agent, i.e. user code of that decorator.
    allowed = {"runtrace._setup", "runtrace", "runtrace.demo"}
    offenders = {m: i for m, i in _importers_of("instrumentation").items() if m not in allowed}
    assert offenders == {}


@pytest.mark.parametrize("room", ["store", "server", "agents", "scale"])
def test_the_read_side_never_imports_instrumentation_or_run_context(room: str) -> None:
    """store/server/agents/scale work on spans that already exist: no patching, no live run state."""
    forbidden = {"instrumentation", "_setup", "runs"}
    offenders = {m: sorted(i for i in imps if _room(i) in forbidden)
                 for m, imps in MODULES.items() if _room(m) == room}
    assert {m: i for m, i in offenders.items() if i} == {}


def test_the_store_does_not_import_its_users() -> None:
    """The store is below the server, the CLI and the agent adapters, never the other way round."""
    forbidden = {"server", "cli", "agents", "report", "reprice", "demo"}
    offenders = {m: sorted(i for i in imps if _room(i) in forbidden)
                 for m, imps in MODULES.items() if _room(m) == "store"}
    assert {m: i for m, i in offenders.items() if i} == {}


@pytest.mark.parametrize("module", ["runtrace.detect", "runtrace.pricing"])
def test_detect_and_pricing_stay_pure(module: str) -> None:
    """No OpenTelemetry, no store: unit-testable on their own."""
    path = SRC / (module.split(".")[1] + ".py")
    if not path.exists():
        path = SRC / module.split(".")[1] / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    otel = sorted({a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
                   if a.name.startswith("opentelemetry")}
                  | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                     and (n.module or "").startswith("opentelemetry")})
    assert otel == []
    inside = {i for i in MODULES[module] if _room(i) in {"store", "server", "instrumentation", "runs", "_setup"}}
    assert inside == set()

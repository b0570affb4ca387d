"""docs/architecture.md's source tree names every module under src/runtrace, and no other."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tree_files() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("## The source tree", 1)[1].split("```", 2)[1]
    files: set[str] = set()
    folders: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = re.match(r"^( *)(\S+)", line)
        if match is None:
            continue
        indent, name = len(match.group(1)), match.group(2)
        while folders and folders[-1][0] >= indent:
            folders.pop()
        if name.endswith("/"):
            folders.append((indent, name))
        elif name.endswith(".py"):
            files.add("".join(f for _, f in folders) + name)
    return files


def test_the_tree_in_the_architecture_doc_matches_the_source() -> None:
    on_disk = {"src/" + str(p.relative_to(ROOT / "src")) for p in (ROOT / "src" / "runtrace").rglob("*.py")
               if p.name != "__init__.py" or p.parent.name == "runtrace"}
    assert _tree_files() == on_disk


def test_every_test_module_has_its_room_in_the_tests_readme() -> None:
    # Issue 10 item 9: tests/README.md maps the rooms to their test files; a new file lands in a row.
    import fnmatch

    text = (ROOT / "tests" / "README.md").read_text(encoding="utf-8")
    patterns = set(re.findall(r"`(test_[\w*]+\.py)`", text))
    unlisted = sorted(p.name for p in (ROOT / "tests").glob("test_*.py")
                      if not any(fnmatch.fnmatch(p.name, pattern) for pattern in patterns))
    assert unlisted == []

"""The package's shape as docs/architecture.md states it: SQL only in store/, and a Layout
section that names every module (and no module that is gone)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "scenesift"
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|WITH)\b")


def _strings(node: ast.AST) -> list[str]:
    """String constants in an expression, f-string parts included."""
    return [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def sql_outside_store(src: Path = SRC) -> list[str]:
    """`<path>:<line>` of every `.execute(`/`.executemany(`/`.executescript(` call outside
    store/ whose argument holds an SQL keyword."""
    found = []
    for path in sorted(src.rglob("*.py")):
        if path.relative_to(src).parts[0] == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"execute", "executemany", "executescript"}
                and any(SQL.search(s) for a in node.args for s in _strings(a))
            ):
                found.append(f"{path.relative_to(src)}:{node.lineno}")
    return found


def test_no_sql_outside_the_store():
    assert sql_outside_store() == []


def test_the_sql_check_finds_a_query_outside_the_store(tmp_path):
    """The check above is not vacuous: a query in a report module is found, one in store/ not."""
    for part in ("report", "store"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "x.py").write_text(
            'n = conn.execute(f"SELECT count(*) FROM {t}").fetchone()\n', encoding="utf-8"
        )
    assert sql_outside_store(tmp_path) == ["report/x.py:1"]


def documented_modules() -> set[str]:
    """Paths (relative to src/scenesift) of the Layout section's entries: a line indented by
    2 per level whose first word ends in `.py` or `/`; descriptions continue further right."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("src/scenesift/"))
    stack: list[str] = []
    out = set()
    for line in lines[start + 1 :]:
        m = re.match(r"^( +)(\S+?(?:\.py|/))(?:\s|$)", line)
        if not m or len(m.group(1)) > 8 or len(m.group(1)) % 2:
            if line and not line.startswith(" "):
                break  # tests/, benchmarks/: outside the package
            continue
        depth = len(m.group(1)) // 2 - 1
        stack = [*stack[:depth], m.group(2)]
        if m.group(2).endswith(".py"):
            out.add("".join(stack))
    return out


def test_layout_names_every_module():
    modules = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")}
    documented = documented_modules()
    assert sorted(modules - documented) == [], "modules missing from architecture.md's Layout"
    assert sorted(documented - modules) == [], "Layout entries with no module"

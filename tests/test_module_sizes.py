"""The house rule that keeps modules readable: no module over 400 lines, the tests' own included."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 400


def test_no_module_is_over_400_lines() -> None:
    packages = ("api", "worker", "catalog", "graders", "bench", "migrations", "tests")
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for package in packages
        for path in (ROOT / package).rglob("*.py")
    }
    assert sizes, "no modules found"
    assert {name: lines for name, lines in sizes.items() if lines > LIMIT} == {}

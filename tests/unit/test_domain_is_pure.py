"""The domain package holds no binary floating point anywhere (D1)."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"


def _float_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            found.append(f"{path.name}:{node.lineno} float literal {node.value!r}")
        elif isinstance(node, ast.Name) and node.id == "float":
            found.append(f"{path.name}:{node.lineno} uses the name float")
    return found


def test_domain_source_contains_no_float() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert files, "domain package not found"
    problems = [p for f in files for p in _float_uses(f)]
    assert problems == []


def test_the_float_detector_catches_floats(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("x = 1.5\ny = float(2)\n")
    assert len(_float_uses(sample)) == 2

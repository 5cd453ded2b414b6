"""The layout holds: import contracts (pyproject's [tool.importlinter]) and no private imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from gisapp.core.config import ROOT

PACKAGES = ("gisapp", "layers", "geodata", "routing")


def _sources() -> list[Path]:
    out = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    return out + list((ROOT / "tests").rglob("*.py")) + list((ROOT / "bench").glob("*.py")) + [ROOT / "wsgi.py"]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint), str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_no_module_imports_a_private_name_of_another():
    bad = []
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {node.module}")
    assert not bad, "\n".join(bad)

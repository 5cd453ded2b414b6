"""The OpenAPI document matches the registered routes; environment.yml matches pyproject.toml."""

from __future__ import annotations

import re
import tomllib

from gisapp.core.config import ROOT


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", "{id}", rule)


def test_openapi_matches_routes(app, http):
    spec = http.get("/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    documented = {(p, m) for p, ops in spec["paths"].items() for m in ops}
    registered = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        for m in rule.methods - {"HEAD", "OPTIONS"}:
            registered.add((_openapi_path(rule.rule), m.lower()))
    assert registered - documented == set(), "routes missing from the OpenAPI document"
    assert documented - registered == set(), "documented operations with no route"
    for ops in spec["paths"].values():
        for op in ops.values():
            assert op.get("summary") and op.get("responses")


_CONDA_ALIASES = {"pyosmium": "osmium"}  # conda-forge name -> PyPI name


def _norm(name: str) -> str:
    name = re.split(r"[<>=\[ ]", name.strip(), maxsplit=1)[0]
    name = name.lower().replace("_", "-")
    return _CONDA_ALIASES.get(name, name)


def test_environment_yml_matches_pyproject():
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = py["optional-dependencies"]
    wanted = {_norm(d) for d in py["dependencies"] + optional["dev"] + optional.get("bench", [])}
    text = (ROOT / "environment.yml").read_text()
    deps = text.split("\ndependencies:", 1)[1]
    listed = {_norm(m.group(1)) for m in re.finditer(r"^  - ([A-Za-z0-9_.-]+)", deps, re.M)}
    # packages only on PyPI, under `pip:` (the project itself is `-e .`)
    listed |= {_norm(m.group(1)) for m in re.finditer(r"^      - ([A-Za-z0-9_][A-Za-z0-9_.-]*)", deps, re.M)}
    assert {"postgresql", "postgis", "pgrouting"} <= listed
    conda = listed - {"python", "postgresql", "postgis", "pgrouting", "pip"}
    assert conda == wanted, (conda ^ wanted)

#!/usr/bin/env python3
"""Bring the browser assets the maps need into web/static/vendor from npm and PyPI.

Police networks have no internet, so every script, style sheet, image and font a page uses is
served by this server. This script is the only place that fetches them: it runs `npm pack`
for pinned package versions (the npm registry), checks each tarball against its pinned
sha512 integrity, copies the files the pages use into ``web/static/vendor/<name>/``,
removes source-map references (no request ever leaves for a missing .map file), and writes
``web/static/VENDOR.md`` (versions, licences, files). Folium's patched Leaflet.heat comes
from the installed `folium` package (PyPI).

The result is committed, so a checkout serves the maps with no build step and no network.
Run it again (``make vendor``) only to change a version; then update the pins below.

    .venv/bin/python scripts/vendor_assets.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "web" / "static" / "vendor"


@dataclass(frozen=True)
class Package:
    name: str  # npm package name
    version: str
    licence: str
    integrity: str  # npm dist.integrity (sha512-...), "" to print it on first fetch
    dest: str  # folder under web/static/vendor
    files: tuple[tuple[str, str], ...]  # (path in the package, path under dest); '*' globs allowed
    purpose: str


PACKAGES: tuple[Package, ...] = (
    Package("leaflet", "1.9.4", "BSD-2-Clause", "sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==", "leaflet",
            (("dist/leaflet.js", "leaflet.js"), ("dist/leaflet.css", "leaflet.css"),
             ("dist/images/*", "images/"), ("LICENSE", "LICENSE")),
            "the map library (folium.Map)"),
    Package("jquery", "3.7.1", "MIT", "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==", "jquery",
            (("dist/jquery.min.js", "jquery.min.js"), ("LICENSE.txt", "LICENSE.txt")),
            "folium.Map default script"),
    Package("bootstrap", "5.3.3", "MIT", "sha512-8HLCdWgyoMguSO9o+aH+iuZ+aht+mzW0u3HIMzVu7Srrpv7EBBxTnrFlSCskwdY1+EOFQSm7uMJhNQHkdPcmjg==", "bootstrap",
            (("dist/css/bootstrap.min.css", "bootstrap.min.css"),
             ("dist/js/bootstrap.bundle.min.js", "bootstrap.bundle.min.js"), ("LICENSE", "LICENSE")),
            "page layout and folium.Map default style"),
    Package("@fortawesome/fontawesome-free", "6.7.2", "CC-BY-4.0 (icons), OFL-1.1 (fonts), MIT (code)", "sha512-JUOtgFW6k9u4Y+xeIaEiLr3+cjoUPiAuLXoyKOJSia6Duzb7pq+A76P9ZdPDoAoxHdHzq6gE9/jKBGXlZT8FbA==",
            "fontawesome",
            (("css/all.min.css", "css/all.min.css"), ("webfonts/*.woff2", "webfonts/"),
             ("LICENSE.txt", "LICENSE.txt")),
            "icons (markers, buttons); folium awesome-markers font"),
    Package("leaflet.awesome-markers", "2.0.5", "MIT", "sha512-Ne/xDjkGyaujwNVVkv2tyXQUV0ZW7gZ0Mo0FuQY4jp2qWrvXi0hwDBvmZyF/8YOvybyMabTMM/mFWCTd1jZIQA==", "awesome-markers",
            (("dist/leaflet.awesome-markers.js", "leaflet.awesome-markers.js"),
             ("dist/leaflet.awesome-markers.css", "leaflet.awesome-markers.css"),
             ("dist/images/*", "images/"), ("LICENSE", "LICENSE")),
            "folium.Icon markers"),
    Package("leaflet.markercluster", "1.5.3", "MIT", "sha512-vPTw/Bndq7eQHjLBVlWpnGeLa3t+3zGiuM7fJwCkiMFq+nmRuG3RI3f7f4N4TDX7T4NpbAXpR2+NTRSEGfCSeA==", "markercluster",
            (("dist/leaflet.markercluster.js", "leaflet.markercluster.js"),
             ("dist/MarkerCluster.css", "MarkerCluster.css"),
             ("dist/MarkerCluster.Default.css", "MarkerCluster.Default.css"), ("MIT-LICENCE.txt", "LICENSE")),
            "folium.plugins.MarkerCluster (incidents)"),
    Package("leaflet.vectorgrid", "1.3.0", "Beerware", "sha512-kWmj1pKM+MVdo/7Mg5zsB3YrGZvo/uIuiANV9MvWUFOG+Y2xAJzrteDhoIcCgTjHSSRJ36xdeGdIQVhuWjnCZw==", "vectorgrid",
            (("dist/Leaflet.VectorGrid.bundled.min.js", "Leaflet.VectorGrid.bundled.min.js"),),
            "folium.plugins.VectorGridProtobuf (road, grid and coverage tiles)"),
    Package("leaflet-draw", "1.0.4", "MIT", "sha512-rsQ6saQO5ST5Aj6XRFylr5zvarWgzWnrg46zQ1MEOEIHsppdC/8hnN8qMoFvACsPvTioAuysya/TVtog15tyAQ==", "leaflet-draw",
            (("dist/leaflet.draw.js", "leaflet.draw.js"), ("dist/leaflet.draw.css", "leaflet.draw.css"),
             ("dist/images/*", "images/")),
            "folium.plugins.Draw (planning)"),
    Package("leaflet.fullscreen", "3.0.2", "MIT", "sha512-m27waFVmwdrLGXjZw2L8b7w/W28EY+u7IGzK2x8K99XaPuzKbjI+/H1j0OMawLcRPZyDRh+39XpyLsvDwHUEoA==", "fullscreen",
            (("Control.FullScreen.js", "Control.FullScreen.js"), ("Control.FullScreen.css", "Control.FullScreen.css"),
             ("icon-fullscreen.svg", "icon-fullscreen.svg"), ("LICENSE", "LICENSE")),
            "folium.plugins.Fullscreen (wall screens)"),
    Package("@fontsource/noto-sans-sc", "5.3.0", "OFL-1.1", "sha512-HeqIlGm0+ohOKxZLuHj1qW6r6avHH0OWdKERAcSDI0RQ+MXrteuLKA+M+5eOA8rYy0MFvOR5AT0fQo2rUkye0Q==", "fonts/noto-sans-sc",
            (("files/noto-sans-sc-*-400-normal.woff2", "files/"), ("400.css", "400.css"), ("LICENSE", "LICENSE")),
            "Chinese UI font (Noto Sans SC, regular; bold is synthesised), the fallback when a workstation has no "
            "CJK font: split by unicode range, a page loads only the slices it uses"),
    # Apache ECharts (issue 14): the charting library of Chinese government and police dashboards, so
    # the charts look like what leadership already reads; one self-contained file (no dependency, no
    # eval, canvas and SVG renderers: a canvas prints and saves as an image), bar / line / pie /
    # calendar heat map in one library, zh and en locales built in. Apache-2.0: LICENSE and NOTICE kept.
    Package("echarts", "6.1.0", "Apache-2.0", "sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA==",
            "echarts",
            (("dist/echarts.min.js", "echarts.min.js"), ("LICENSE", "LICENSE"), ("NOTICE", "NOTICE")),
            "the report charts (/reports, /reports/print, the chief's and leadership's home): bars, lines, pies, "
            "the hour x weekday heat map"),
)

# Files copied from installed PyPI packages: (package, path in it, dest, licence, purpose).
PYPI_FILES = (
    ("folium", "templates/leaflet_heat.min.js", "leaflet-heat/leaflet_heat.min.js", "MIT (folium), BSD-2-Clause",
     "folium.plugins.HeatMap (Leaflet.heat 0.2.0 with folium's weights patch)"),
)

# Font Awesome icons the map pages draw, gathered into one SVG sprite (web/static/vendor/fontawesome/
# icons.svg, ``<use href="...#fa-NAME">``): pages need no icon web font (saves ~150 KB per first visit).
SPRITE_ICONS = ("shield-halved", "traffic-light", "car-burst", "tower-broadcast", "car-side", "car", "motorcycle",
                "truck-medical", "van-shuttle", "bell", "id-card", "route", "table-cells", "draw-polygon", "user",
                "language", "right-from-bracket", "list", "circle-info", "circle-exclamation", "lock",
                # issue 14: reports
                "chart-column", "star", "star-half-stroke", "print", "download", "arrow-up", "arrow-down", "minus")

_SOURCEMAP = re.compile(rb"\n?(//|/\*)# sourceMappingURL=[^\n]*")


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _npm_pack(pkg: Package, workdir: Path) -> Path:
    out = subprocess.run(["npm", "pack", "--json", f"{pkg.name}@{pkg.version}"], cwd=workdir,
                         check=True, capture_output=True, text=True).stdout
    info = json.loads(out)[0]
    tgz = workdir / info["filename"]
    got = _integrity(tgz.read_bytes())
    if pkg.integrity and got != pkg.integrity:
        raise SystemExit(f"{pkg.name}@{pkg.version}: integrity {got} != pinned {pkg.integrity}")
    return tgz


def _clean(data: bytes, path: str) -> bytes:
    if path.endswith((".js", ".css")):
        data = _SOURCEMAP.sub(b"", data)
    if path.endswith(".css"):
        # woff2 only (every browser we support reads it); drop the .woff fallbacks.
        data = re.sub(rb",\s*url\(\./files/[^)]+\.woff\) format\('woff'\)", b"", data)
    return data


def _sprite(tar: tarfile.TarFile, members: dict) -> str:
    """Return an SVG sprite of SPRITE_ICONS (symbols ``fa-NAME``) from the package's svgs/solid."""
    symbols = []
    for name in SPRITE_ICONS:
        svg = tar.extractfile(members[f"svgs/solid/{name}.svg"]).read().decode()
        box = re.search(r'viewBox="([^"]+)"', svg).group(1)
        paths = "".join(re.findall(r"<path[^>]*/>", svg))
        symbols.append(f'<symbol id="fa-{name}" viewBox="{box}">{paths}</symbol>')
    return ('<svg xmlns="http://www.w3.org/2000/svg" style="display:none">'
            "<!-- Font Awesome Free 6 icons, CC BY 4.0 (https://fontawesome.com/license/free) -->"
            + "".join(symbols) + "</svg>\n")


def vendor(package_filter: set[str] | None = None) -> list[dict]:
    """Fetch, check and copy every package; return the rows of VENDOR.md."""
    import fnmatch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for pkg in PACKAGES:
            if package_filter and pkg.name not in package_filter:
                continue
            tgz = _npm_pack(pkg, work)
            dest = VENDOR / pkg.dest
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            n = 0
            with tarfile.open(tgz) as tar:
                members = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}
                for pattern, target in pkg.files:
                    matched = sorted(p for p in members if fnmatch.fnmatch(p, pattern))
                    if not matched:
                        raise SystemExit(f"{pkg.name}: nothing matches {pattern}")
                    for p in matched:
                        out = dest / (target + Path(p).name if target.endswith("/") else target)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        out.write_bytes(_clean(tar.extractfile(members[p]).read(), p))
                        n += 1
                if pkg.name == "@fortawesome/fontawesome-free":
                    (dest / "icons.svg").write_text(_sprite(tar, members), encoding="utf-8")
                    n += 1
            rows.append({"name": pkg.name, "version": pkg.version, "licence": pkg.licence,
                         "source": "npm", "integrity": _integrity(tgz.read_bytes()),
                         "dest": f"vendor/{pkg.dest}/", "files": n, "purpose": pkg.purpose})
            print(f"{pkg.name}@{pkg.version}: {n} files -> {dest.relative_to(ROOT)}", file=sys.stderr)
    import importlib.metadata as md
    import importlib.util

    for dist, rel, dest_rel, licence, purpose in PYPI_FILES:
        spec = importlib.util.find_spec(dist)
        src = Path(spec.origin).parent / rel
        out = VENDOR / dest_rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(_clean(src.read_bytes(), rel))
        rows.append({"name": f"{dist} ({rel})", "version": md.version(dist), "licence": licence, "source": "PyPI",
                     "integrity": "sha256-" + hashlib.sha256(out.read_bytes()).hexdigest(),
                     "dest": f"vendor/{dest_rel}", "files": 1, "purpose": purpose})
    return rows


def write_vendor_md(rows: list[dict]) -> None:
    lines = [
        "# Vendored browser assets",
        "",
        "Every script, style sheet, image and font the pages use is served from `web/static` (police",
        "networks have no internet). `scripts/vendor_assets.py` (`make vendor`) fetches the pinned",
        "versions below with `npm pack` (npm registry) or copies them from installed PyPI packages,",
        "checks the tarball integrity, strips source-map references and writes this file.",
        "`layers/assets.py` points folium's CDN defaults at these copies; a test fails when a",
        "rendered page references any other host.",
        "",
        "| package | version | licence | from | folder | files | used for |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| `{r['name']}` | {r['version']} | {r['licence']} | {r['source']} | `{r['dest']}` | "
                     f"{r['files']} | {r['purpose']} |")
    lines += ["", "Integrity of the fetched tarballs:", ""]
    for r in rows:
        lines.append(f"- `{r['name']}@{r['version']}`: `{r['integrity']}`")
    lines += [
        "",
        "Project-written assets beside them (MIT, this project): `web/static/css/gisapp.css`,",
        "`web/static/js/gisapp-map.js` (legend toggling, vector-tile popups, the GCJ-02 display",
        "transform), `web/static/vendor/folium/leaflet.awesome.rotate.min.css` (a stand-in for the",
        "rotation rule folium.Map references from its repository); the report pages' `web/static/js/reports.js`,",
        "`web/static/js/home.js` and `web/static/css/reports.css` (issue 14, drawing with ECharts).",
        "",
    ]
    (ROOT / "web" / "static" / "VENDOR.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    write_vendor_md(vendor(set(sys.argv[1:]) or None))

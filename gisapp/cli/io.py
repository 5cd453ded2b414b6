"""The `gisapp import` and `gisapp export` commands: any layer in and out as GeoJSON,
GeoPackage, zipped Shapefile or CSV with WKT (see geodata/io.py)."""

from __future__ import annotations

import json

import click

from gisapp.core import db
from gisapp.core.catalog import LAYERS
from gisapp.core.config import Settings


@click.command("import")
@click.argument("layer", type=click.Choice(sorted(LAYERS)))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--crs", default=None, help="CRS of a file that declares none, e.g. EPSG:4548")
@click.option("--replace", is_flag=True, help="replace the layer's features (versioned layers: new versions)")
@click.option("--skip-invalid", is_flag=True, help="import the valid rows and report the others "
              "(default: all or nothing)")
def import_cmd(layer: str, file: str, crs: str | None, replace: bool, skip_invalid: bool) -> None:
    """Import FILE into LAYER (reprojected to EPSG:4326); every invalid row is reported."""
    from geodata.io import ImportFailed, import_layer

    s = Settings.from_env()
    with db.connect(s.database_url) as conn:
        try:
            report = import_layer(conn, layer, file, crs=crs, settings=s, replace=replace,
                                  all_or_nothing=not skip_invalid, actor="cli")
        except ImportFailed as e:
            conn.rollback()
            for err in e.errors:
                click.echo(f"row {err['row']}: {err['field']}: {err['reason']}", err=True)
            raise click.ClickException(e.reason) from None
        conn.commit()
    for err in report.errors:
        click.echo(f"skipped row {err['row']}: {err['field']}: {err['reason']}", err=True)
    click.echo(json.dumps(report.as_dict(), ensure_ascii=False))


@click.command("export")
@click.argument("layer", type=click.Choice(sorted(LAYERS)))
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--history", is_flag=True, help="all versions of a versioned layer, not only those in force")
def export_cmd(layer: str, file: str, history: bool) -> None:
    """Export LAYER to FILE: .geojson, .gpkg, .zip (zipped Shapefile), .shp or .csv (WKT)."""
    from geodata.io import export_layer
    from gisapp.core.errors import GisappError

    s = Settings.from_env()
    with db.connect(s.database_url) as conn:
        try:
            out = export_layer(conn, layer, file, history=history)
        except GisappError as e:
            raise click.ClickException(e.reason) from None
    click.echo(json.dumps(out, ensure_ascii=False))

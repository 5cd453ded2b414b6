"""A minimal dispatcher page (/map/dispatch), registered only while the maps pages (gisapp.pages) are absent."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request

from .app import current_user, settings

bp = Blueprint("dispatch_pages", __name__)


@bp.get("/map/dispatch")
def dispatch_page():
    user = current_user()
    if user is None:
        return redirect(f"/login?next={request.path}")
    lang = request.args.get("lang") or user.get("language") or settings().default_language
    return render_template("dispatch_page.html", lang="en" if lang == "en" else "zh", user=user)

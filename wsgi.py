"""WSGI entry point for gunicorn: `gunicorn wsgi:app`."""

from gisapp.web import create_app

app = create_app()

"""WSGI entry point for gunicorn: `gunicorn wsgi:app`."""

from gisapp import create_app

app = create_app()

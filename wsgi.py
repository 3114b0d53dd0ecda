"""WSGI entry point: `gunicorn wsgi:app`."""

from portal.web import create_app

app = create_app()

"""The WSGI entry point: `gunicorn wsgi:app`."""

from monitorapp import create_app

app = create_app()

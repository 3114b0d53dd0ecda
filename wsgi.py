"""WSGI entry point: `gunicorn wsgi:app`."""

from portal.core import metrics
from portal.core.settings import load_settings
from portal.web import create_app

settings = load_settings()
metrics.enable(settings)     # every worker writes its metrics where the deployment adds them up
app = create_app(settings)

"""WSGI entry point: `gunicorn wsgi:app`."""

from portal.core import logs, metrics
from portal.core.settings import load_settings
from portal.web import create_app

logs.setup_unless_done()     # before Flask's logger exists: it then adds no handler of its own
settings = load_settings()
metrics.enable(settings)     # every worker writes its metrics where the deployment adds them up
app = create_app(settings)

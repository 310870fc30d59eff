"""WSGI entry point: ``gunicorn wsgi:app -c gunicorn.conf.py``."""

from app import create_app
from orders.wiring import configure_logging

configure_logging()
app = create_app()

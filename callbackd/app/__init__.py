"""Adapters only: the command line, Celery tasks, the web app and the demo. Each is a few lines over services."""

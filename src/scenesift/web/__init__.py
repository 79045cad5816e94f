"""The web app (FastAPI + Jinja2 + a little vanilla JS): dashboard, frame browser, frame
view, review of a round's picks and situation labelling. ``scenesift serve`` runs it."""

from scenesift.web.app import create_app

__all__ = ["create_app"]

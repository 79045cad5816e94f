"""The web app's routers: ``pages`` (server-rendered HTML), ``api`` (the JSON the pages'
scripts call) and ``media`` (images, thumbnails, CAM overlays, reports, static files).
Each depends on :func:`scenesift.web.security.require_access`."""

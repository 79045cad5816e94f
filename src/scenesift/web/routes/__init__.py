"""The web app's routers: ``pages`` (server-rendered HTML), ``api`` (the JSON the pages'
scripts call), ``media`` (images, thumbnails, CAM overlays, reports, static files) and
``ml`` (scenesift as a Label Studio ML backend).
Each depends on :func:`scenesift.web.security.require_access`."""

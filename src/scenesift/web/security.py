"""Who may talk to the web app, and which files it may ever send.

:class:`Access` (a route dependency) decides who may use the app; :class:`Guard` (ASGI
middleware) limits bodies, refuses cross-site writes and adds security headers.

- **Access token.** Bound to a loopback address the app answers without one (only processes
  on this machine can connect), but then only to loopback ``Host`` names, which defeats DNS
  rebinding. Bound to anything else it needs a token on every request: the header
  ``Authorization: Bearer <token>``, or ``?token=<token>`` once (the app answers with an
  HttpOnly cookie and redirects to the same URL without the token, so it does not linger in
  the address bar or history). Label Studio can send only HTTP Basic auth to an ML backend,
  so ``Authorization: Basic base64(<any user>:<token>)`` is the token too. Tokens are
  compared in constant time.
- **Cross-site requests.** A state-changing request whose ``Origin`` is not this server is
  refused, so another web page open in the labeller's browser cannot save labels.
- **Files.** :func:`resolve_under` is the only way a path becomes a file to send: relative,
  no ``..``, and its real path (symlinks followed) must stay inside the allowed root.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "scenesift_token"
MAX_BODY = 1_000_000  # bytes: a labelling save is well under 10 kB
#: Label Studio's /predict sends whole tasks (~300 bytes each), thousands at a time: 1 MB
#: would cap a request at ~3,000 tasks. Only that route gets the larger limit.
MAX_ML_BODY = 64_000_000
_ML_PREDICT = re.compile(r"/ml/[^/]+/predict/?")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: Sent with every response: no framing (clickjacking), no MIME sniffing, no referrer (a
#: token in a URL never leaks through links), and scripts only from our own static files.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}
#: Reports are the project's own HTML files (they may carry inline scripts and styles).
REPORT_CSP = "default-src 'self' 'unsafe-inline' data:; frame-ancestors 'none'"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """True for a loopback address or ``localhost``; any other name counts as a network."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_matches(supplied: str | None, token: str) -> bool:
    if not supplied:
        return False
    return secrets.compare_digest(supplied.encode("utf-8"), token.encode("utf-8"))


def body_limit(path: str) -> int:
    """The largest request body the route at ``path`` accepts, in bytes."""
    return MAX_ML_BODY if _ML_PREDICT.fullmatch(path) else MAX_BODY


def _basic_password(auth: str) -> str | None:
    """The password of ``Authorization: Basic base64(user:password)``, or None."""
    if auth[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon else None


def _host_name(host_header: str) -> str:
    """``127.0.0.1:8765`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``."""
    host_header = host_header.strip()
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else ""
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _wants_json(scope: Scope, headers: dict[str, str]) -> bool:
    return scope["path"].startswith("/api/") or "text/html" not in headers.get("accept", "")


class Refused(Exception):
    """Raised by :class:`Access` with the answer to send instead of the route's."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class Access:
    """Who may use the app: loopback ``Host`` names only (no token), or the token.

    A dependency of every router (``Depends(require_access)``); the app's error handlers ask
    it too, so a request that matches no route or fails validation is refused the same way
    and learns nothing without the token.
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def __call__(self, request: Request) -> None:
        refusal = self.refusal(request)
        if refusal is not None:
            raise Refused(refusal)

    def refusal(self, request: Request) -> Response | None:
        """The answer for a request that may not proceed, or None."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        json = _wants_json(request.scope, headers)
        if self.token is None:
            if not is_loopback(_host_name(headers.get("host", ""))):
                return _deny(
                    403,
                    "this server answers only on loopback host names; serve with --token to "
                    "use it from other machines",
                    json,
                )
            return None
        supplied_query = request.query_params.get("token")
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        basic = _basic_password(auth)  # Label Studio's ML backend authentication
        cookie = request.cookies.get(COOKIE)
        supplied = (bearer, basic, supplied_query, cookie)
        if not any(token_matches(t, self.token) for t in supplied):
            return _deny(
                401,
                "access token required: open the URL `scenesift serve` printed "
                "(…/?token=…), send `Authorization: Bearer <token>`, or (Label Studio) "
                "basic auth with the token as the password",
                json,
            )
        if supplied_query and token_matches(supplied_query, self.token):
            cookie_value = (
                f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000"
            )
            if request.method in SAFE_METHODS:
                # Drop the token from the address bar: the cookie carries it from now on.
                query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                target = request.url.path + ("?" + urlencode(query) if query else "")
                response = RedirectResponse(target, status_code=303)
                response.headers.append("set-cookie", cookie_value)
                return _with_headers(response)
            request.state.token_cookie = cookie_value  # Guard adds it to the response
        return None


def require_access(request: Request) -> None:
    """The route dependency: the app's :class:`Access` (``app.state.access``) decides."""
    request.app.state.access(request)


class Guard:
    """ASGI middleware for what must hold before any route runs: body size limits and the
    Origin check of writes (CSRF); security headers (and a token cookie) on every response.
    Who may use the app at all is :class:`Access`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        headers = {k.lower(): v for k, v in request.headers.items()}
        refusal = self._check(request, headers)
        if refusal is not None:
            await _with_headers(refusal)(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {k.lower() for k, _ in raw}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        raw.append((name.lower().encode(), value.encode()))
                cookie = scope.get("state", {}).get("token_cookie")
                if cookie:
                    raw.append((b"set-cookie", cookie.encode()))
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _check(request: Request, headers: dict[str, str]) -> Response | None:
        if request.method in SAFE_METHODS:
            return None
        json = _wants_json(request.scope, headers)
        length = headers.get("content-length")
        if length is None and "chunked" in headers.get("transfer-encoding", ""):
            return _deny(411, "send a Content-Length", json)
        limit = body_limit(request.url.path)
        if length is not None and (not length.isdigit() or int(length) > limit):
            return _deny(413, f"request body over {limit:,} bytes", json)
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, headers.get("host", "")):
            return _deny(403, f"cross-origin request from {origin} refused", json)
        if headers.get("sec-fetch-site") == "cross-site":
            return _deny(403, "cross-site request refused", json)
        return None


def _same_origin(origin: str, host_header: str) -> bool:
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.netloc.lower() == host_header.strip().lower()


def _deny(status: int, message: str, json: bool) -> Response:
    if json:
        return JSONResponse({"detail": message}, status_code=status)
    return PlainTextResponse(f"{status}: {message}\n", status_code=status)


def _with_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


_DRIVE = re.compile(r"^[A-Za-z]:")


def resolve_under(root: str | os.PathLike, rel: str, allowed: Iterable[str] = ()) -> Path | None:
    """The real path of the file ``rel`` under ``root``, or None when it is not a plain
    relative path, leaves the root (``..``, an absolute path, a symlink pointing outside),
    or is not a regular file. ``rel`` is used exactly as given (already URL-decoded once by
    the server): a ``%2e%2e`` left in it is a literal name, never decoded again.

    ``allowed`` (real paths) widens where the link target may lie: an image symlink may
    point into another registered image root, never anywhere else.
    """
    if not isinstance(rel, str) or not rel or "\x00" in rel or _DRIVE.match(rel):
        return None
    posix = PurePosixPath(rel.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        return None
    base = os.path.realpath(root)
    full = os.path.realpath(os.path.join(base, *posix.parts))
    bases = [base, *allowed]
    if not any(full == b or full.startswith(b.rstrip(os.sep) + os.sep) for b in bases):
        return None
    if not os.path.isfile(full):
        return None
    return Path(full)

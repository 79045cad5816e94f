"""Access token, Host and Origin checks, file serving confined to the allowed roots, and no
5xx on garbage input to any route."""

from __future__ import annotations

import base64
import http.client
import os
import re

import pytest
from starlette.routing import Mount

from conftest import LiveServer, TestClient, frame_id
from scenesift.store import Store
from scenesift.web import create_app
from scenesift.web.security import COOKIE, is_loopback, require_access, resolve_under
from scenesift.web.server import access, url

TOKEN = "s3cret-token-for-tests"


def raw_get(port: int, path: str, headers: dict | None = None) -> tuple[int, bytes]:
    """A request with the path sent byte for byte (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# ------------------------------------------------------------------------------ token
@pytest.fixture
def guarded(project):
    with TestClient(create_app(project, token=TOKEN), base_url="http://10.0.0.5:8765") as c:
        yield c


def test_every_request_needs_the_token(guarded):
    for path in ["/", "/browse", "/api/frames", "/frames/1/image", "/static/app.css",
                 "/api/openapi.json", "/no/such/page"]:  # fmt: skip
        r = guarded.get(path)
        assert r.status_code == 401, path
        assert "token" in r.text
    assert guarded.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get("/", params={"token": "wrong"}).status_code == 401
    ok = guarded.get("/api/frames", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and COOKIE not in ok.headers.get("set-cookie", "")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_with_the_token_as_password_is_the_token(guarded):
    """Label Studio can authenticate to an ML backend only with HTTP Basic auth."""
    assert guarded.get("/api/frames", headers=basic("label-studio", TOKEN)).status_code == 200
    assert guarded.get("/api/frames", headers=basic("", TOKEN)).status_code == 200
    bad = ["Basic", "Basic !!not-base64!!", "Basic " + base64.b64encode(TOKEN.encode()).decode(),
           "Basic " + base64.b64encode(b"x:\xff").decode()]  # fmt: skip
    for headers in [basic(TOKEN, "wrong"), basic("x", TOKEN[:-1]),
                    *({"Authorization": value} for value in bad)]:  # fmt: skip
        r = guarded.get("/api/frames", headers=headers)
        assert r.status_code == 401 and "basic auth" in r.text, headers


def test_token_in_the_url_once_then_an_httponly_cookie(guarded):
    r = guarded.get("/browse", params={"token": TOKEN, "state": "labelled"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/browse?state=labelled"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN}") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    guarded.cookies.set(COOKIE, TOKEN)
    assert guarded.get("/browse?state=labelled").status_code == 200
    guarded.cookies.set(COOKIE, "forged")
    assert guarded.get("/browse").status_code == 401


def test_writes_need_the_token_too(guarded, project):
    fid = frame_id(project, "d1/000.jpg")
    body = {"review": "accepted"}
    assert guarded.post(f"/api/rounds/2/picks/{fid}", json=body).status_code == 401
    r = guarded.post(
        f"/api/rounds/2/picks/{fid}", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 200
    r = guarded.post(f"/api/rounds/2/picks/{fid}", json=body, params={"token": TOKEN})
    assert r.status_code == 200 and r.headers["set-cookie"].startswith(f"{COOKIE}={TOKEN}")
    guarded.cookies.clear()
    r = guarded.post(f"/api/frames/{fid}/labels", content=b"{", params={"token": "wrong"})
    assert r.status_code == 401  # not a 422 that would answer before the token check


def test_serve_requires_a_token_off_loopback():
    assert access("127.0.0.1", None) == (None, False)
    assert access("localhost", None) == (None, False)
    assert access("::1", None) == (None, False)
    token, generated = access("0.0.0.0", None)
    assert generated and len(token) >= 24
    assert access("192.168.1.4", "mine") == ("mine", False)
    assert access("0.0.0.0", "  ")[1]  # a blank token is no token
    assert url("0.0.0.0", 8765, "t") == "http://127.0.0.1:8765/?token=t"
    assert is_loopback("127.0.0.2") and not is_loopback("example.com")
    assert not is_loopback("10.0.0.1")


# ------------------------------------------------------------------------------ host/origin
def test_without_a_token_only_loopback_host_names_are_answered(project):
    with TestClient(create_app(project), base_url="http://127.0.0.1:8765") as c:
        assert c.get("/").status_code == 200
        assert c.get("/", headers={"host": "localhost:8765"}).status_code == 200
        r = c.get("/", headers={"host": "evil.example:8765"})  # DNS rebinding
        assert r.status_code == 403 and "--token" in r.text


def test_cross_origin_writes_are_refused(client, project):
    fid = frame_id(project, "d1/000.jpg")
    body = {"review": "accepted"}
    r = client.post(
        f"/api/rounds/2/picks/{fid}", json=body, headers={"origin": "http://evil.example"}
    )
    assert r.status_code == 403
    r = client.post(
        f"/review/2/{fid}",
        content="review=rejected",
        headers={"content-type": "application/x-www-form-urlencoded", "origin": "null"},
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/rounds/2/picks/{fid}", json=body, headers={"sec-fetch-site": "cross-site"}
    )
    assert r.status_code == 403
    r = client.post(f"/api/rounds/2/picks/{fid}", json=body, headers={"origin": "http://127.0.0.1"})
    assert r.status_code == 200


def test_oversized_or_unsized_bodies_are_refused(client, project):
    fid = frame_id(project, "d1/000.jpg")
    big = b'{"review": "accepted", "pad": "' + b"x" * 1_100_000 + b'"}'
    r = client.post(f"/api/rounds/2/picks/{fid}", content=big,
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 413

    def chunks():
        yield b'{"review": '
        yield b'"accepted"}'

    r = client.post(f"/api/rounds/2/picks/{fid}", content=chunks(),
                    headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 411


def test_security_headers(client):
    r = client.get("/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"


# ------------------------------------------------------------------------------ files
def test_resolve_under(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "a" / "link.jpg")
    os.symlink(root / "a" / "x.jpg", root / "inside.jpg")
    assert resolve_under(root, "a/x.jpg") == (root / "a" / "x.jpg").resolve()
    assert resolve_under(root, "inside.jpg") == (root / "a" / "x.jpg").resolve()
    for bad in ["../secret.txt", "a/../../secret.txt", str(tmp_path / "secret.txt"),
                "/etc/passwd", "a/link.jpg", "", "a", "a/x.jpg\x00.png", "..\\secret.txt",
                "C:/Windows/win.ini", "%2e%2e/secret.txt"]:  # fmt: skip
        assert resolve_under(root, bad) is None, bad
    # a link may point into another allowed root
    assert resolve_under(root, "a/link.jpg", [str(tmp_path.resolve())]) is not None


TRAVERSALS = [
    "/reports/../catalog.sqlite",
    "/reports/%2e%2e/catalog.sqlite",
    "/reports/%2E%2E/%2E%2E/data/d0/000.jpg",
    "/reports/%252e%252e/catalog.sqlite",
    "/reports/..%2fcatalog.sqlite",
    "/reports/..%252fcatalog.sqlite",
    "/reports/%2fetc%2fpasswd",
    "/reports//etc/passwd",
    "/reports/campaign/../../catalog.sqlite",
    "/reports/campaign/%2e%2e%2f%2e%2e%2fcatalog.sqlite",
    "/reports/outside.html",  # a symlink out of reports/
    "/reports/campaign/..%5c..%5ccatalog.sqlite",
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/static/%252e%252e/app.py",
    "/static/..%2fapp.py",
]


def _plant_escape_links(project) -> None:
    (project.parent / "secret.html").write_text("SECRET")
    os.symlink(project.parent / "secret.html", project / "reports" / "outside.html")


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_404_through_the_test_client(client, project, path):
    _plant_escape_links(project)
    r = client.get(path)
    assert r.status_code in (404, 400), (path, r.status_code)
    assert b"SECRET" not in r.content and b"SQLite format" not in r.content


def test_path_traversal_is_404_on_the_wire(project):
    _plant_escape_links(project)
    with LiveServer(create_app(project)) as server:
        assert raw_get(server.port, "/reports/campaign/summary.html")[0] == 200
        for path in TRAVERSALS:
            status, body = raw_get(server.port, path)
            assert status in (404, 400), (path, status)
            assert b"SECRET" not in body and b"SQLite format" not in body


def test_frame_images_only_from_registered_roots(client, project):
    data = project.parent / "data"
    (project.parent / "outside.jpg").write_bytes((data / "d0" / "000.jpg").read_bytes())
    fid = frame_id(project, "d0/001.jpg")
    with Store.open(project) as store, store.transaction() as c:
        c.execute("UPDATE frames SET path = '../outside.jpg' WHERE id = ?", (fid,))
    assert client.get(f"/frames/{fid}/image").status_code == 404
    assert client.get(f"/frames/{fid}/thumb").status_code == 404
    # an image that is a symlink pointing outside every root
    target = data / "d0" / "002.jpg"
    target.unlink()
    os.symlink(project.parent / "outside.jpg", target)
    fid = frame_id(project, "d0/002.jpg")
    assert client.get(f"/frames/{fid}/image").status_code == 404
    # ... and one pointing into the root is fine
    target.unlink()
    os.symlink(data / "d0" / "003.jpg", target)
    assert client.get(f"/frames/{fid}/image").status_code == 200
    # a frame whose catalog path is absolute
    with Store.open(project) as store, store.transaction() as c:
        c.execute("UPDATE frames SET path = '/etc/passwd' WHERE id = ?", (fid,))
    assert client.get(f"/frames/{fid}/image").status_code == 404


# ------------------------------------------------------------------------------ garbage
GARBAGE = ["0", "-1", "abc", "1.5", "99999999999999999999999", "9223372036854775807",
           "%00", "..%2f..%2fetc%2fpasswd", "'; DROP TABLE frames; --", "\u00e9\u00e8",
           "nan", "inf", "1e309", "[]", "{}", "true", " "]  # fmt: skip
QUERY_NAMES = ["situation", "value", "predicted", "min_score", "state", "round", "score_min",
               "score_max", "review", "drive", "sort", "after", "before", "limit", "after_rank",
               "token"]  # fmt: skip
BODIES = [b"", b"null", b"[]", b"{", b'{"label_version": "x"}', b'{"review": 1}',
          b'{"label_version": 99999999999999999999999, "labeller": "a", "situations": {}}',
          b'{"label_version": 0, "labeller": "a", "situations": {"day": null}}',
          b"review=maybe", b"\xff\xfe"]  # fmt: skip


def app_routes(app) -> list:
    """Every route of the app, inside its included routers too."""
    out = []

    def walk(routes) -> None:
        for r in routes:
            if hasattr(r, "original_router"):  # FastAPI keeps included routers whole
                walk(r.original_router.routes)
            elif not isinstance(r, Mount):
                out.append(r)

    walk(app.routes)
    return out


def test_every_route_depends_on_the_access_check(project):
    app = create_app(project)
    routes = app_routes(app)
    assert "/api/openapi.json" in [r.path for r in routes] and len(routes) >= 17
    for route in routes:
        assert require_access in [d.call for d in route.dependant.dependencies], route.path


def test_no_route_answers_5xx_to_garbage(client):
    """Every route, garbage in every path parameter and every query parameter at once."""
    routes = app_routes(client.app)
    assert len(routes) >= 14
    statuses = set()
    for route in routes:
        params = re.findall(r"{(\w+)(?::\w+)?}", route.path)
        for k, value in enumerate(GARBAGE):
            path = route.path
            for p in params:
                path = re.sub("{" + p + r"(?::\w+)?}", value.replace("/", "%2f"), path)
            query = dict.fromkeys(QUERY_NAMES, value)
            for method in sorted(route.methods - {"HEAD"}):
                body = BODIES[k % len(BODIES)]
                headers = {"content-type": "application/json"}
                r = client.request(method, path, params=query, content=body, headers=headers)
                statuses.add(r.status_code)
                assert r.status_code < 500, (method, path, query, r.text[:300])
    assert statuses & {400, 404, 422}


#: Parameters whose garbage can pass validation and reach the handler's own checks.
FREE_TEXT = ["situation", "predicted", "drive", "after", "before", "value", "sort", "review"]


def test_garbage_with_valid_ids_reaches_the_handlers_without_5xx(client, project):
    fid = frame_id(project, "d1/000.jpg")
    paths = ["/browse", f"/label/{fid}", "/label", "/review", f"/frames/{fid}/cam"]
    for value in GARBAGE[::2]:
        for name in FREE_TEXT:
            for path in paths:
                r = client.get(path, params={name: value}, follow_redirects=False)
                assert r.status_code < 500, (path, name, value, r.text[:300])
    for body in BODIES:
        for path in [f"/api/frames/{fid}/labels", f"/api/rounds/2/picks/{fid}",
                     f"/review/2/{fid}"]:  # fmt: skip
            r = client.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code < 500, (path, body, r.text[:300])

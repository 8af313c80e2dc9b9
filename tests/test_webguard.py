"""The web server answers only at its own address, to its own pages, and with its key when it has one:
DNS rebinding, foreign and other-port origins, 'null' origins, missing keys and oversized uploads are refused."""

from __future__ import annotations

import http.client

import pytest
from fakeengine import FakeEngine
from servekit import serving

from app.services import build_services
from app.webguard import HostGuard, is_loopback, split_host


def test_loopback_and_host_parsing():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]") and is_loopback("127.4.5.6")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("evil.example")
    assert split_host("[::1]:7860") == ("::1", "7860") and split_host("Localhost:80") == ("localhost", "80")


@pytest.fixture
def server(models_dir, monkeypatch, request):
    """Iris on the fake engine; the test's param, when given, is the access key."""
    monkeypatch.setenv("IRIS_MAX_UPLOAD_MB", "1")
    monkeypatch.setenv("IRIS_MAX_VIDEO_MB", "1")
    key = getattr(request, "param", None)
    with serving(build_services(models_dir, engine=FakeEngine(), with_history=True), 7990, key) as port:
        yield port, key


def _get(port, path="/", headers=None, method="GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data


def test_host_and_origin_are_checked(server):
    port, _ = server
    here = f"127.0.0.1:{port}"
    assert _get(port, headers={"Host": here})[0] == 200
    assert _get(port, headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})[0] == 200
    # DNS rebinding: a foreign name that resolves here, with its own matching origin.
    status, hdrs, body = _get(port, "/config", headers={"Host": f"evil.example:{port}",
                                                       "Origin": f"http://evil.example:{port}"})
    assert status == 421 and b"own address" in body and "access-control-allow-origin" not in hdrs
    for origin in ("http://evil.example", f"http://127.0.0.1:{port + 1}", "null", f"https://127.0.0.1:{port}"):
        status, hdrs, _ = _get(port, "/config", headers={"Host": here, "Origin": origin})
        assert status == 403, origin
        assert "access-control-allow-origin" not in hdrs
    # A preflight from a foreign page is refused too, before Gradio's CORS layer could answer it.
    status, hdrs, _ = _get(port, "/gradio_api/upload", method="OPTIONS",
                           headers={"Host": here, "Origin": "http://evil.example",
                                    "Access-Control-Request-Method": "POST"})
    assert status == 403 and "access-control-allow-origin" not in hdrs


def test_uploads_are_capped(server):
    port, _ = server
    boundary = "irisboundary"
    payload = b"x" * (2 * 1024 * 1024)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    status, _, data = _get(port, "/gradio_api/upload", method="POST", body=body,
                           headers={"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}",
                                    "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status >= 400, (status, data[:200])


@pytest.mark.parametrize("server", ["s3cret-key"], indirect=True)
def test_key_is_required_when_set(server):
    port, key = server
    here = {"Host": f"127.0.0.1:{port}"}
    assert _get(port, "/config", headers=here)[0] == 401
    assert _get(port, "/?key=wrong", headers=here)[0] == 401
    status, hdrs, _ = _get(port, f"/?key={key}", headers=here)
    assert status == 303 and hdrs["location"] == "/" and "iris_key=" in hdrs["set-cookie"]
    assert "HttpOnly" in hdrs["set-cookie"] and "SameSite=Strict" in hdrs["set-cookie"]
    assert _get(port, "/config", headers={**here, "Cookie": f"iris_key={key}"})[0] == 200
    assert _get(port, "/config", headers={**here, "Authorization": f"Bearer {key}"})[0] == 200
    assert _get(port, "/config", headers={**here, "Cookie": "iris_key=nope"})[0] == 401


def test_bound_to_every_interface_any_name_but_only_with_the_key():
    import asyncio

    calls = []

    async def app(scope, receive, send):
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = []

    async def send(msg):
        sent.append(msg)

    async def receive():
        return {"type": "http.request"}

    guard = HostGuard(app, "0.0.0.0", 7860, key="k")
    scope = {"type": "http", "path": "/", "headers": [(b"host", b"192.168.1.20:7860")], "query_string": b""}
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 401 and not calls
    sent.clear()
    scope["headers"].append((b"authorization", b"Bearer k"))
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 200 and calls == ["/"]

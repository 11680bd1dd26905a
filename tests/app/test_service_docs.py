"""OpenAPI declares the bearer scheme (Swagger's Authorize); /docs and /redoc work offline."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from keel.app.auth import SCHEME_NAME
from keel.app.service import create_app
from keel.store.db import Store

TOKEN = "t0ken-for-docs-tests"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = Store.from_url(f"sqlite:///{tmp_path_factory.mktemp('docs') / 'keel.db'}")
    store.create_all()
    yield TestClient(create_app(store, token=TOKEN))
    store.dispose()


def test_openapi_declares_the_bearer_scheme_on_every_write(client):
    spec = client.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"][SCHEME_NAME]
    assert scheme == {"type": "http", "scheme": "bearer",
                      "description": scheme["description"]}
    secured = {path for path, ops in spec["paths"].items() for op in ops.values()
               if {SCHEME_NAME: []} in op.get("security", [])}
    # the control writes need the token; reads and the cost estimate (a computation) do not
    assert secured == {"/api/control/kill-switch", "/api/control/engine",
                       "/api/control/rebalance"}


def test_the_token_check_is_unchanged_behind_the_scheme(client):
    url, body = "/api/control/kill-switch", {"engaged": False, "reason": "docs test"}
    r = client.post(url, json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post(url, json=body, headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.post(url, json=body,
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def _urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_local_assets_that_serve(client, page):
    r = client.get(page)
    assert r.status_code == 200
    html = r.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    urls = _urls(html)
    assert "/openapi.json" in urls
    assets = [u for u in urls if u.startswith("/static/")]
    assert assets, html
    for u in urls:
        assert u.startswith("/") or u.startswith("data:"), u
    for u in assets:
        got = client.get(u)
        assert got.status_code == 200 and len(got.content) > 10_000, u
        assert got.headers["content-type"].startswith(("text/javascript", "text/css"))
    assert client.get("/static/docs/../service.py").status_code == 404
    assert client.get("/static/docs/dashboard.html").status_code == 404


def test_write_without_a_configured_token_is_still_403(tmp_path):
    store = Store.from_url(f"sqlite:///{tmp_path / 'k.db'}")
    store.create_all()
    c = TestClient(create_app(store))
    r = c.post("/api/control/kill-switch", json={"engaged": True, "reason": "x"},
               headers={"Authorization": "Bearer anything"})
    assert r.status_code == 403
    store.dispose()

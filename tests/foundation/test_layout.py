"""The base layout: vendored assets, CSRF for htmx, strict CSP, no inline script."""

from __future__ import annotations

import re
from pathlib import Path

from monitorapp import ROOT


def test_every_response_carries_the_security_headers(client):
    headers = client.get("/").headers
    csp = headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
                      "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in headers["Permissions-Policy"]


def test_the_page_loads_vendored_htmx_and_css_from_self(client):
    body = client.get("/").get_data(as_text=True)
    assert '/static/vendor/htmx/htmx.min.js' in body
    assert '/static/vendor/pico/pico.min.css' in body
    assert "://" not in re.sub(r'href="https?://[^"]*"', "", " ".join(re.findall(r'(?:src|href)="[^"]*"', body)))


def test_the_vendored_files_are_served_with_their_licences(client):
    assert client.get("/static/vendor/htmx/htmx.min.js").status_code == 200
    assert client.get("/static/vendor/pico/pico.min.css").status_code == 200
    assert (ROOT / "static/vendor/htmx/LICENSE").exists()
    assert (ROOT / "static/vendor/pico/LICENSE.md").exists()
    assert "2.0." in (ROOT / "static/vendor/README.md").read_text()


def test_the_body_carries_the_csrf_token_for_htmx(client):
    body = client.get("/").get_data(as_text=True)
    assert re.search(r'<body hx-headers=\'\{"X-CSRFToken": "[^"]+"\}\'', body)


def test_the_flash_area_exists_for_out_of_band_swaps(client):
    assert 'id="flashes"' in client.get("/").get_data(as_text=True)


def test_no_template_has_inline_script_style_or_handlers():
    offenders = []
    for path in Path(ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text):
            offenders.append(f"{path}: inline <script>")
        if re.search(r"\sstyle=", text) or "<style" in text:
            offenders.append(f"{path}: inline style")
        if re.search(r"\s(on[a-z]+|hx-on[:\w-]*)=", text):
            offenders.append(f"{path}: inline event handler")
    assert offenders == []


def test_responses_vary_on_hx_request(client):
    assert "HX-Request" in client.get("/").headers.get("Vary", "")


def test_the_query_count_header_is_off_by_default(client):
    assert "X-Query-Count" not in client.get("/health/ready/").headers


def test_the_query_count_header_counts_sql_statements(make_app):
    app = make_app(QUERY_COUNT_HEADER=True)
    response = app.test_client().get("/health/ready/")
    assert int(response.headers["X-Query-Count"]) >= 1
    assert app.test_client().get("/health/").headers["X-Query-Count"] == "0"

"""Browser tracking tests: a real `kawa serve`, a web site on another origin, and headless Chromium.

The site is a tiny HTTP server on 127.0.0.1 (another port, so another origin) serving pages with the
two-line snippet; the shop project allows that origin only. `http://localhost:PORT` reaches the same
site from an origin the project does not allow.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from kawa.serve.local import free_port
from tests.conftest import Server
from tests.ui.conftest import chromium_path


class Site:
    """Pages served from memory on 127.0.0.1:`port`; `pages[path]` is the HTML of `path`."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                html = pages.get(self.path.split("?")[0])
                body = (html or "not found").encode()
                self.send_response(200 if html is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        # The same pages from an origin no project allows (a different host name is a different origin).
        self.foreign_origin = f"http://localhost:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Site:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def snippet(kawa_url: str, key: str, **attributes: str) -> str:
    """The two lines a site adds to its pages (README), with optional data-* settings."""
    extra = "".join(f' data-{name.replace("_", "-")}="{value}"' for name, value in attributes.items())
    return (
        "<script>window.kawa=window.kawa||function(){(kawa.q=kawa.q||[]).push(arguments)}</script>\n"
        f'<script async src="{kawa_url}/kawa.js" data-key="{key}"{extra}></script>'
    )


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with Site() as running:
        yield running


@pytest.fixture(scope="module")
def kawa_server(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Iterator[Server]:
    """`kawa serve` whose shop project allows the site's origin only."""
    root: Path = tmp_path_factory.mktemp("browser")
    server = Server(root)
    config = yaml.safe_load((root / "kawa.yaml").read_text())
    config["projects"]["shop"]["allowed_origins"] = [site.origin]
    (root / "kawa.yaml").write_text(yaml.safe_dump(config))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, closed with the module.

    Not tests/ui's session-wide browser: Playwright's sync API runs one instance per thread at a time, and
    a browser kept open for the session here would stop the web UI tests from starting theirs.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context and page; a script error, or a warning from kawa.js, fails the test."""
    context = chromium.new_context()
    context.set_default_timeout(15_000)
    errors: list[str] = []
    opened = context.new_page()
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("console", lambda msg: errors.append(msg.text) if msg.text.startswith("kawa:") else None)
    yield opened
    context.close()
    assert not errors, f"errors on the page: {errors}"

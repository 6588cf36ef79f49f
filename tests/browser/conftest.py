"""Fixtures of the browser tests: a headless Chromium (Debian's, driven by Playwright) and the
built book served on 127.0.0.1. Skipped without Chromium or Playwright, unless
AMBIENTLAB_REQUIRE_BROWSER=1 (set by .ci/run)."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.pages import CHROMIUM, FLAGS


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def _problem() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements.txt)"
    if not Path(CHROMIUM).is_file():
        return "chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium, or a skip (a failure with AMBIENTLAB_REQUIRE_BROWSER=1)."""
    problem = _problem()
    if problem:
        if os.environ.get("AMBIENTLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests required but cannot run: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(built_book: Path) -> Iterator[str]:
    """The built book served on 127.0.0.1 (a free port); yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(built_book)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()

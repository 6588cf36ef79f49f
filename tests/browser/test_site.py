"""Every page of the built book's English edition in a real browser (Debian's headless Chromium,
driven by Playwright): it renders its title and sidebar, loads every image, logs no console error,
gets no HTTP error and asks nothing of any host but 127.0.0.1; every step-through of a walk page
steps forward and back. Screenshots of key pages go to _build/screenshots/ for review. (The Chinese
edition: test_site_zh.py; single pages: test_pages.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import check_edition

pytestmark = pytest.mark.browser


def test_every_page_renders_offline_cleanly(browser: Any, server: str, built_book: Path) -> None:
    check_edition(browser, server, built_book, "")

"""Every page of the built book's Chinese edition (中文版, under zh/) in a real browser, with the
same checks as the English one (test_site.py): offline, every image loaded, no console error, every
step-through stepping (its buttons and count in Chinese), and the text drawn in a CJK font, not in
boxes (the fonts Chromium used, read through DevTools). Its own file, so that pytest-xdist runs it
beside the English edition's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.site import check_edition

pytestmark = pytest.mark.browser


def test_every_chinese_page_renders_offline_cleanly(browser: Any, server: str, built_book: Path) -> None:
    check_edition(browser, server, built_book, "zh/")

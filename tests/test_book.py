"""The book builds with zero warnings (Sphinx -W -n), executing every notebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.book


def test_book_builds_without_warnings(tmp_path: Path) -> None:
    jb = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    html = tmp_path / "_build" / "html"
    page = (html / "notebooks" / "01-the-demo-cluster.html").read_text()
    assert "ztunnel-pods-ips" in page and "[recorded]" in page
    assert "cdn.jsdelivr.net" not in page, "no page may load anything from the internet"

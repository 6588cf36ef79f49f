"""A local Sphinx extension: no Thebe assets in the pages.

Jupyter Book 1.x always loads sphinx-thebe, even with ``launch_buttons.thebe: false``. Its inline
configuration script (which names a CDN URL) is added twice, and the second copy throws
"Identifier 'THEBE_JS_URL' has already been declared" in every page's console. Live code is not
offered by this book (it is read offline), so the Thebe scripts and stylesheet are dropped.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _is_thebe(asset: Any) -> bool:
    name = str(getattr(asset, "filename", asset) or "")
    body = str(getattr(asset, "attributes", {}).get("body", "")) if hasattr(asset, "attributes") else ""
    return "thebe" in name or "THEBE_JS_URL" in body


def drop_thebe(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Remove Thebe's scripts and stylesheet from one page's context."""
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if not _is_thebe(a)]


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the extension."""
    app.connect("html-page-context", drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

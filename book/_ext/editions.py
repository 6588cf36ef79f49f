"""A local Sphinx extension: every page links to the same page in the book's other edition.

The English edition is the site's root, the Chinese one its ``zh/`` folder (``book/build.py``), so
page ``notebooks/08-walk-same-node`` is ``notebooks/08-walk-same-node.html`` in one and
``zh/notebooks/08-walk-same-node.html`` in the other. The link is relative, so the site works from
``file://`` and from any folder of a web server. Each page also names its twin in a
``<link rel="alternate" hreflang>``.
"""

from __future__ import annotations

import html
from typing import Any

from sphinx.application import Sphinx

# language of this edition -> (the other edition's language tag, its name in its own language,
# the path from this edition's root to the other's)
OTHER = {"en": ("zh-CN", "中文", "zh/"), "zh_CN": ("en", "English", "../")}


def twin_href(pagename: str, language: str) -> str:
    """Return the relative address, from page ``pagename`` of the ``language`` edition, of the same
    page in the other edition."""
    _, _, to_other = OTHER[language]
    return "../" * pagename.count("/") + to_other + pagename + ".html"


def add_switch(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    """Put the link to this page's twin at the top of the page's body and in its head."""
    if doctree is None or "body" not in context:  # the search page: nothing to link to
        return
    tag, name, _ = OTHER[app.config.language]
    href = html.escape(twin_href(pagename, app.config.language))
    context["body"] = (f'<p class="edition-switch"><a href="{href}" hreflang="{tag}" lang="{tag}">{name}</a></p>\n'
                       + context["body"])
    context["metatags"] = context.get("metatags", "") + f'\n<link rel="alternate" hreflang="{tag}" href="{href}" />'


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the extension."""
    app.connect("html-page-context", add_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

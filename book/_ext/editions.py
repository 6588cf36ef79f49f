"""A local Sphinx extension: every page links to the same page in the book's other edition.

The English edition is the site's root, the Chinese one its ``zh/`` folder (``book/build.py``), so
page ``notebooks/08-walk-same-node`` is ``notebooks/08-walk-same-node.html`` in one and
``zh/notebooks/08-walk-same-node.html`` in the other. The link is relative, so the site works from
``file://`` and from any folder of a web server. Each page also names its twin in a
``<link rel="alternate" hreflang>``.

It also translates the captions of the table of contents' parts ("Packet walks"): sphinx-external-toc
inserts its toctrees after Sphinx has translated the page, so their captions, although extracted into
the root page's catalog, would stay English. And it registers Sphinx's Chinese search language again
with one change: Sphinx 7.4 keeps the Latin words it has seen in a list and looks each word up in it,
which made indexing the Chinese edition quadratic (a minute of this book's build); a set gives the
same index.
"""

from __future__ import annotations

import html
import os
from typing import Any

from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform

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


class TranslateTocCaptions(SphinxTransform):
    """Translate the captions of the toctrees that sphinx-external-toc inserts, with the page's catalog."""

    default_priority = 101  # after sphinx-external-toc's InsertToctrees (100), itself after Sphinx's Locale (20)

    def apply(self, **kwargs: Any) -> None:
        """Replace each caption by its translation, where the page's catalog has one."""
        from sphinx.locale import init as init_locale
        from sphinx.util.i18n import docname_to_domain

        toctrees = [node for node in self.document.findall(addnodes.toctree) if node.get("caption")]
        if not toctrees or self.config.language in (None, "en"):
            return
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        dirs = [os.path.join(self.env.srcdir, folder) for folder in self.config.locale_dirs]
        catalog, found = init_locale(dirs, self.config.language, domain)
        for node in toctrees if found else []:
            node["caption"] = catalog.gettext(node["caption"])


def _chinese_search() -> type:
    """Return Sphinx's Chinese search language with its seen Latin words in a set."""
    import jieba
    from sphinx.search.zh import SearchChinese

    class Chinese(SearchChinese):
        def init(self, options: dict[str, str]) -> None:
            super().init(options)
            self.latin_terms = set()  # type: ignore[assignment]  # a list in Sphinx 7.4: `in` is linear

        def split(self, input: str) -> list[str]:
            latin = [term.strip() for term in self.latin1_letters.findall(input)]
            self.latin_terms.update(latin)  # type: ignore[attr-defined]
            return [*jieba.cut_for_search(input), *latin]

    return Chinese


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the extension."""
    app.connect("html-page-context", add_switch)
    app.add_transform(TranslateTocCaptions)
    app.add_search_language(_chinese_search())
    return {"parallel_read_safe": True, "parallel_write_safe": True}

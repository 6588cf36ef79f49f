"""The Chinese edition: its catalogs hold exactly the messages of today's English text, every one
translated (not fuzzy) with its markup, code and addresses kept; the built edition is Chinese, its
pages link to their English twins and back, and its search index keeps the glossary's terms whole."""

from __future__ import annotations

import filecmp
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages import pofile
from hypothesis import given, settings
from hypothesis import strategies as st

from ambientlab.book.student import translate_markdown
from tests.conftest import ROOT, book_module

build = book_module("book/build.py")  # the editions' build and the catalogs' checks
twin_href = book_module("book/_ext/editions.py").twin_href


def _ids(path: Path) -> set[str]:
    with open(path, "rb") as f:
        return {str(m.id) for m in pofile.read_po(f) if m.id}


def test_the_catalogs_hold_exactly_todays_messages(tmp_path: Path) -> None:
    """A paragraph changed in English and not in its catalog (or a catalog older than its page)
    fails here: `make catalogs` merges it in, as fuzzy, and then it must be translated."""
    done = subprocess.run([sys.executable, str(ROOT / "book" / "build.py"), "extract", "--out", str(tmp_path)],
                          capture_output=True, text=True)  # Sphinx in its own process, as the build runs it
    assert done.returncode == 0, done.stderr[-3000:]
    pot = Path(done.stdout.strip())
    expected = {p.relative_to(pot).with_suffix(".po") for p in pot.rglob("*.pot")}
    folder = build.LOCALE / build.ZH / "LC_MESSAGES"
    assert {p.relative_to(folder) for p in build.catalogs()} == expected, "run make catalogs"
    stale = []
    for rel in sorted(expected):
        source, catalog = _ids(pot / rel.with_suffix(".pot")), _ids(folder / rel)
        stale += [f"{rel}: not in the catalog (run make catalogs): {m[:70]!r}" for m in sorted(source - catalog)]
        stale += [f"{rel}: no longer in the English text: {m[:70]!r}" for m in sorted(catalog - source)]
    assert not stale, "\n".join(stale[:30])


def test_sphinx_intl_counts_no_fuzzy_or_untranslated_message() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "sphinx-intl"), "stat", "-d", "locale", "-l", build.ZH],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    counts = re.findall(r"^(\S+\.po): (\d+) translated, (\d+) fuzzy, (\d+) untranslated\.$", done.stdout, re.M)
    assert len(counts) == len(build.catalogs()) >= 20, done.stdout
    unfinished = [f"{name}: {fuzzy} fuzzy, {todo} untranslated" for name, _, fuzzy, todo in counts if (fuzzy, todo) != ("0", "0")]
    assert not unfinished, "\n".join(unfinished)
    assert sum(int(n) for _, n, _, _ in counts) > 1000


def test_every_translation_keeps_its_markup() -> None:
    problems = build.catalog_problems(build.catalogs())
    assert not problems, "\n".join(problems[:30])


@pytest.mark.parametrize(("message", "translation", "problem"), [
    ("the **ipset**", "**（ipset）**的", "an asterisk shows in the translation"),
    ("see {doc}`02-primer`", "见第 2 章", "role target differs"),
    ("via `ip rule`", "通过 `ip route`", "inline code differs"),
    ("from 10.244.2.1", "来自 10.244.2.10", "address differs"),
    ("moved to 10.244.1.23.", "挪到了另一个节点。", "address differs"),  # an address that ends a sentence counts
    ("mark 0x200/0x200", "标记 0x20/0x200", "hex number differs"),
    ("see [kind](https://kind.sigs.k8s.io/)", "见 [kind](https://kind.sigs.k8s.io)", "link address differs"),
    ("ztunnel", "", "untranslated"),
])
def test_a_translation_that_loses_markup_is_caught(message: str, translation: str, problem: str) -> None:
    assert any(p.startswith(problem) for p in build.message_problems(message, translation)), \
        build.message_problems(message, translation)


def test_a_translation_may_drop_emphasis() -> None:
    assert build.message_problems("the *downstream* peer", "下游对端") == []


def test_a_faithful_translation_passes() -> None:
    assert build.message_problems("the **ipset** of {ref}`who <who-connects>`, `ip rule` 10.244.2.1 0x200, at 10.244.1.23.",
                                  "{ref}`谁 <who-connects>` 的 **ipset**，`ip rule` 10.244.2.1 0x200，位于 10.244.1.23。") == []


def test_the_search_keeps_the_glossarys_terms_whole() -> None:
    words = build.search_words()
    assert {"策略路由", "流量劫持", "节点", "隧道", "网络命名空间"} <= set(words)
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,}", w) for w in words)


def test_twin_addresses() -> None:
    assert twin_href("notebooks/08-walk-same-node", "en") == "../zh/notebooks/08-walk-same-node.html"
    assert twin_href("notebooks/08-walk-same-node", "zh_CN") == "../../notebooks/08-walk-same-node.html"
    assert twin_href("index", "en") == "zh/index.html"


@pytest.mark.book
def test_the_chinese_edition_is_built_in_chinese(built_book: Path) -> None:
    zh = built_book / "zh"
    english = {p.relative_to(built_book) for p in built_book.rglob("*.html") if "zh" not in p.relative_to(built_book).parts[:1]
               and "_static" not in p.parts}
    chinese = {p.relative_to(zh) for p in zh.rglob("*.html") if "_static" not in p.parts}
    assert english == chinese and len(chinese) >= 25
    page = (zh / "notebooks" / "05-rules-and-tables.html").read_text()
    assert '<html lang="zh-CN"' in page and "策略路由" in page
    assert 'hreflang="en"' in page and 'hreflang="zh-CN"' in (built_book / "notebooks" / "05-rules-and-tables.html").read_text()
    # code and outputs are shared: the recorded ip rule listing is in both editions, unchanged
    assert "from all fwmark 0x200/0x200 goto 32766" in page
    # the editions share their theme files, figures and page sources: the Chinese keeps only what differs
    kept = [p for folder in ("_static", "_images", "_sources") for p in (zh / folder).rglob("*") if p.is_file()]
    twins = [(p, built_book / p.relative_to(zh)) for p in kept]
    assert kept and not [p for p, twin in twins if twin.is_file() and filecmp.cmp(p, twin, shallow=False)]
    assert '"../../_static/' in page and '"../../_images/' in (zh / "notebooks" / "01-the-demo-cluster.html").read_text()
    index = (zh / "searchindex.js").read_text()
    terms = json.loads(index[index.index("(") + 1:index.rindex(")")])["terms"]
    assert {"策略路由", "流量劫持"} <= set(terms), "the Chinese search index splits the glossary's terms"


@given(st.text(max_size=200), st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_the_check_answers_any_text_with_a_list_never_a_traceback(message: str, translation: str) -> None:
    problems = build.message_problems(message, translation)
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    assert (problems == ["untranslated"]) == (not translation.strip())


@given(st.text(alphabet=st.sampled_from(list("ab 中文*`#>-|:.1\n{}[]()<>")), max_size=200))
@settings(max_examples=200, deadline=None)
def test_a_markdown_cell_of_any_shape_translates_or_names_what_it_lacks(source: str) -> None:
    asked: list[str] = []
    text, missing = translate_markdown(source, lambda message: asked.append(message))  # type: ignore[func-returns-value]
    assert text == source and missing == asked  # nothing translated: nothing changed, every message reported
    same, none = translate_markdown(source, lambda message: message)
    assert none == [] and isinstance(same, str)

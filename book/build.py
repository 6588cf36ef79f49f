"""Build the book's two editions from one source, and keep the Chinese catalogs current.

    python book/build.py [--out DIR] [--lang en zh]   both editions (or those named) into DIR/html
    python book/build.py catalogs                      extract the messages, update locale/zh_CN
    python book/build.py check [PO ...]                what is untranslated, fuzzy or broken
    python book/build.py extract [--out DIR]           the messages only, into DIR/gettext (.pot)

English is built at the site's root (``_build/html``), Chinese under ``_build/html/zh``, each with
``-W -n --keep-going`` as ``jupyter-book build`` does. Both read the same notebooks and pages: the
Chinese edition takes its prose from the gettext catalogs in ``locale/zh_CN/LC_MESSAGES`` (one per
page), and shares every code cell, output, table and figure with the English one. The two builds
run in parallel, each in its own process (Sphinx keeps global state), with their own doctrees.
Needs only the venv's packages; run it with the venv's python (``make book`` does).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "locale"
ZH = "zh_CN"

# What differs in the Chinese edition; everything else comes from _config.yml.
EDITIONS: dict[str, dict[str, Any]] = {
    "en": {},
    "zh": {
        "language": ZH,
        "html_title": "Ambient 模式流量劫持，逐包计算",
        # the folded cells' buttons (myst-nb, sphinx-togglebutton), which the prose tells the reader to click
        "nb_code_prompt_show": "展开代码单元",
        "nb_code_prompt_hide": "收起代码单元",
        "togglebutton_hint": "点击展开",
        "togglebutton_hint_hide": "点击收起",
    },
}
SITE_PATHS = {"en": "", "zh": "zh"}  # where each edition lives in the site


_CJK_WORD = re.compile(r"[\u4e00-\u9fff]{2,}")
_TERM_SEPARATORS = re.compile(r"[\s；，、（）《》“”†]+")


def search_words(glossary: Path = ROOT / "book" / "glossary.md") -> list[str]:
    """Return the Chinese terms of the glossary (its 中文 column), each once: the words that the
    Chinese search index must keep whole (策略路由, not 策略 + 路由), in the glossary's order."""
    words: list[str] = []
    for line in glossary.read_text().splitlines():
        cells = line.split(" | ")
        if line.startswith("| ") and len(cells) > 2 and not line.startswith("| term"):
            words += [w for w in _TERM_SEPARATORS.split(cells[1]) if _CJK_WORD.fullmatch(w)]
    return list(dict.fromkeys(words))


def _overrides(lang: str, out: Path | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"external_toc_path": str(ROOT / "_toc.yml"), "latex_individualpages": False,
                            "nitpicky": True, **EDITIONS[lang]}
    if lang != "en":
        conf["html_theme_options"] = _theme_options(lang)
    if lang == "zh" and out is not None:  # jieba's user dictionary: one word per line, with a high count
        words = out / "search-words-zh.txt"
        words.parent.mkdir(parents=True, exist_ok=True)
        words.write_text("".join(f"{word} 100000\n" for word in search_words()), encoding="utf-8")
        conf["html_search_options"] = {"dict": str(words)}
    return conf


def _theme_options(lang: str) -> dict[str, Any]:
    """Return the theme options of _config.yml with the search box's placeholder in ``lang``."""
    from jupyter_book.config import get_final_config

    sphinx_config, _ = get_final_config(user_yaml=ROOT / "_config.yml", cli_config={"latex_individualpages": False},
                                        sourcedir=ROOT)
    options = dict(sphinx_config["html_theme_options"])
    options["search_bar_text"] = {"zh": "搜索本书…"}[lang]
    return options


def build_one(lang: str, out: Path) -> int:
    """Build edition ``lang`` into ``out/html`` (+ its site path); return Sphinx's exit status."""
    from jupyter_book.sphinx import build_sphinx

    html = out / "html" / SITE_PATHS[lang]
    if lang == "zh":  # the Chinese search index splits words with jieba, which logs its start-up on stderr
        import jieba

        jieba.setLogLevel(logging.WARNING)
    result = build_sphinx(ROOT, html, noconfig=True, path_config=str(ROOT / "_config.yml"),
                          confoverrides=_overrides(lang, out), doctreedir=out / f".doctrees-{lang}",
                          builder="html", warningiserror=True, keep_going=True, quiet=True)
    if isinstance(result, Exception):
        print(f"the {lang} edition failed: {result!r}", file=sys.stderr)
        return 1
    return int(result)


def build(out: Path, langs: list[str]) -> int:
    """Build the editions ``langs`` in parallel, each in its own process, then let the Chinese one
    share the English one's files (:func:`share_files`); return 0 when all built without a warning,
    else 1 (each process prints its own warnings)."""
    procs = {lang: subprocess.Popen([sys.executable, __file__, "--one", lang, "--out", str(out)]) for lang in langs}
    failed = [lang for lang, proc in procs.items() if proc.wait() != 0]
    for lang in failed:
        print(f"book/build.py: the {lang} edition did not build cleanly", file=sys.stderr)
    if not failed and {"en", "zh"} <= set(langs):
        share_files(out / "html")
    return 1 if failed else 0


_ASSET = re.compile(r'(?P<attr>href|src)="(?P<up>(?:\.\./)*)(?P<path>(?:_static|_images|_sources)/[^"?#]*)')


def share_files(html: Path) -> int:
    """Point every reference of the Chinese edition (``html/zh``) to a theme file, figure or page
    source that the English edition has byte for byte at the English copy, and delete the Chinese
    one (what differs, such as the Chinese search's scripts, stays); return the bytes saved."""
    import filecmp

    zh = html / SITE_PATHS["zh"]
    same = {f.relative_to(zh).as_posix(): f for folder in ("_static", "_images", "_sources") for f in (zh / folder).rglob("*")
            if f.is_file() and (html / f.relative_to(zh)).is_file() and filecmp.cmp(f, html / f.relative_to(zh), shallow=False)}

    def shared(m: re.Match[str]) -> str:
        return f'{m["attr"]}="{m["up"]}../{m["path"]}' if m["path"] in same else m[0]

    for page in zh.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        page.write_text(_ASSET.sub(shared, text), encoding="utf-8")
    saved = 0
    for f in same.values():
        saved += f.stat().st_size
        f.unlink()
    for folder in sorted((d for d in zh.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return saved


def extract(out: Path) -> Path:
    """Extract every translatable message of the book (Sphinx's gettext builder, one ``.pot`` per
    page) into ``out/gettext``; return that folder. Raises RuntimeError when the extraction fails."""
    from jupyter_book.sphinx import build_sphinx

    pot = out / "gettext"
    result = build_sphinx(ROOT, pot, noconfig=True, path_config=str(ROOT / "_config.yml"),
                          confoverrides=_overrides("en"), doctreedir=out / ".doctrees-gettext",
                          builder="gettext", warningiserror=True, keep_going=True, really_quiet=True)
    if result != 0:
        raise RuntimeError(f"extracting the messages failed: {result!r}")
    return pot


def update_catalogs(out: Path) -> None:
    """Extract the messages and merge them into ``locale/zh_CN`` (sphinx-intl update): a new
    message arrives untranslated, a changed one fuzzy, with the old translation as a hint."""
    pot = extract(out)
    subprocess.run([str(Path(sys.executable).parent / "sphinx-intl"), "update", "-p", str(pot), "-d", str(LOCALE),
                    "-l", ZH, "-w", "0", "--no-obsolete"], check=True, cwd=ROOT)
    from babel.messages import pofile

    for path in catalogs():  # the header says whose catalog it is, and is not itself "fuzzy"
        with open(path, "rb") as f:
            catalog = pofile.read_po(f)
        catalog.fuzzy = False
        catalog.last_translator = catalog.language_team = "the ambientlab authors (中文版)"
        with open(path, "wb") as f:
            pofile.write_po(f, catalog, width=0)


# What a translation must keep as its message has it: the targets of roles ({doc}`x`, {ref}`text
# <label>`) and link addresses, each as often (Sphinx warns otherwise); inline code, IPv4 addresses
# and prefixes, hexadecimal numbers (marks, masks), each at least once. Letters next to a number are
# ASCII: a Chinese character right before an address ("位于10.244.1.23") does not hide it.
_COUNTED = ("role target", "link address")
_KEPT = {
    "role target": re.compile(r"\{(\w+)\}`(?:[^`<]*<)?([^`>]*)>?`"),
    "inline code": re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)"),
    "link address": re.compile(r"\]\(([^)\s]+)\)"),
    "address": re.compile(r"(?<![0-9A-Za-z_.])\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?(?![0-9A-Za-z_]|\.\d)"),
    "hex number": re.compile(r"(?<![0-9A-Za-z_])0x[0-9a-fA-F]+(?:/0x[0-9a-fA-F]+)?(?![0-9A-Za-z_])"),
}
_INLINE_TAGS = ("<code>", "<a ")  # emphasis may go (Chinese is not set in italics), but must not show as '*'
_TAG = re.compile(r"<code>.*?</code>|<[^>]+>")


def _kept(text: str) -> dict[str, list[str]]:
    found = {}
    for what, rx in _KEPT.items():  # roles first: their backticks are not code
        found[what] = sorted(m.group(1) + ":" + m.group(2) if what == "role target" else m.group(0)
                             for m in rx.finditer(text))
        if what == "role target":
            text = rx.sub(" ", text)
    return found


def message_problems(msgid: str, msgstr: str) -> list[str]:
    """Return what is wrong with one translation (empty when nothing is): no translation, a piece of
    markup, code or an address that the message has and the translation lacks (or the other way
    round), emphasis that shows as asterisks (CommonMark: ``**`` next to full-width punctuation), or a
    translation that is not one paragraph ("1. …" is a list: Sphinx would show the English instead)."""
    if not msgstr.strip():
        return ["untranslated"]
    from markdown_it import MarkdownIt

    problems = []
    source, target = _kept(msgid), _kept(msgstr)
    for what in _KEPT:
        if (source[what] != target[what]) if what in _COUNTED else (set(source[what]) != set(target[what])):
            lost = sorted(set(source[what]) - set(target[what]))
            added = sorted(set(target[what]) - set(source[what]))
            problems.append(f"{what} differs (message: {source[what]}, translation: {target[what]};"
                            f" missing {lost}, extra {added})")
    md = MarkdownIt("commonmark")
    blocks = [token.type for token in md.parse(msgstr) if token.level == 0]
    if blocks != ["paragraph_open", "paragraph_close"]:  # Sphinx drops such a translation, silently
        problems.append(f"the translation does not read as one paragraph (it starts a {blocks[0].split('_')[0]}:"
                        " escape a leading '1.', '-', '#' or '>' with a backslash)")
    html_id, html_str = md.renderInline(msgid), md.renderInline(msgstr)
    for tag in _INLINE_TAGS:
        if html_id.count(tag) != html_str.count(tag):
            problems.append(f"{tag.strip('<> ')} renders {html_id.count(tag)} times in the message, "
                            f"{html_str.count(tag)} in the translation")
    if _TAG.sub("", html_str).count("*") > _TAG.sub("", html_id).count("*"):
        problems.append("an asterisk shows in the translation: emphasis that does not render (a ** or * next to"
                        " full-width punctuation: put the punctuation outside, or drop the emphasis)")
    return problems


def catalog_problems(paths: list[Path]) -> list[str]:
    """Return one line per problem in the catalogs ``paths``: ``file: "start of message": problem``
    for every fuzzy, untranslated or broken translation (:func:`message_problems`)."""
    from babel.messages import pofile

    lines = []
    for path in paths:
        with open(path, "rb") as f:
            catalog = pofile.read_po(f)
        for message in catalog:
            if not message.id:
                continue
            found = ["fuzzy"] if message.fuzzy else []
            found += message_problems(str(message.id), str(message.string))
            lines += [f"{path}: {str(message.id)[:60]!r}: {problem}" for problem in found]
    return lines


def catalogs() -> list[Path]:
    """Return the Chinese edition's catalogs, one per page, in order."""
    return sorted((LOCALE / ZH / "LC_MESSAGES").rglob("*.po"))


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["build", "catalogs", "check", "extract"], default="build")
    parser.add_argument("po", nargs="*", type=Path, help="check: the catalogs to check (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "_build")
    parser.add_argument("--lang", nargs="+", choices=sorted(EDITIONS), default=sorted(EDITIONS))
    parser.add_argument("--one", choices=sorted(EDITIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    if args.one:
        return build_one(args.one, args.out.resolve())
    if args.command == "check":
        problems = catalog_problems([p.resolve() for p in args.po] or catalogs())
        print("\n".join(problems) or "every message is translated, and no translation lost its markup")
        return 1 if problems else 0
    if args.command == "extract":
        print(extract(args.out.resolve()))
        return 0
    if args.command == "catalogs":
        update_catalogs(args.out.resolve())
        return 0
    return build(args.out.resolve(), args.lang)


if __name__ == "__main__":
    sys.exit(main())

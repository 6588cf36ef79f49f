"""The fonts of the book's figures. Both editions (English, 中文) share every figure, and a figure's
label that is a sentence carries its Chinese too (:func:`ambientlab.book.figures.bilingual`): DejaVu
Sans, matplotlib's default, draws every Latin letter, and Noto Sans CJK (``fonts-noto-cjk``, on the
list of system tools) the Chinese glyphs it lacks."""

from __future__ import annotations

from pathlib import Path

CJK_FONT = "Noto Sans CJK SC"


def use_cjk_fallback() -> bool:
    """Put Noto Sans CJK after the default font family, glyph by glyph, for every figure drawn from
    now on (a figure made before keeps its fonts); return True when the font is installed, False
    (nothing changed: matplotlib would log a missing font at every figure) when it is not. A font
    installed after matplotlib cached its font list is added from the system's font folder."""
    import matplotlib
    from matplotlib import font_manager

    try:
        font_manager.findfont(CJK_FONT, fallback_to_default=False)
    except ValueError:
        files = sorted(Path("/usr/share/fonts").glob("**/NotoSansCJK-*.ttc"))  # regular and bold
        if not files:
            return False
        for file in files:
            font_manager.fontManager.addfont(str(file))
    families = list(matplotlib.rcParams["font.family"])
    if CJK_FONT not in families:
        matplotlib.rcParams["font.family"] = [*families, CJK_FONT]
    return True

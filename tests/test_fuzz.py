"""Seeded mutation fuzzing of the capture files: a repeated key, a cut-off end, odd characters and
out-of-range numbers must each give a ParseError naming file and line, or a different result;
never the same result (a token lost silently), another exception, or a hang."""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from re import (
    _compiler,  # type: ignore[attr-defined]
    _parser,  # type: ignore[attr-defined]
)
from re import _constants as _const  # type: ignore[attr-defined]
from typing import Any

import pytest

from ambientlab import ParseError, load_capture
from ambientlab.core.capture import list_captures
from ambientlab.core.parse import custom_columns, parse, to_records

ODD = ["\x0c", "\x85", "\x1c", "\u2028", "\u0663", "\u00b2", "_", "+", "\r", "\x00"]
HUGE = ["4294967296", "70000", "99999999999", "18446744073709551616", "1_000", "+5", "\u0661\u0662"]
MUTANTS_PER_FILE = 4


def _files() -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for name in list_captures():
        capture = load_capture(name)
        for path in capture.files.index:
            entry = capture.entry(path)
            options = dict(entry.get("options") or {})
            if options.pop("headerless", False):
                options["columns"] = custom_columns(entry["command"])
            text = capture.text(path)
            if text.strip():
                out.append((f"{name}/{path}", entry["parser"], text, options))
    return out


FILES = _files()


def _records(kind: str, text: str, source: str, options: dict[str, Any]) -> str:
    return json.dumps(to_records(kind, parse(kind, text, source, **options)), sort_keys=True, default=str)


def _mutate(rng: random.Random, text: str) -> tuple[str, str]:
    lines = text.split("\n")[:-1]
    k = rng.randrange(len(lines))
    words = lines[k].split(" ")
    how = rng.choice(["repeat", "cut", "odd", "range"])
    if how == "repeat" and len(words) >= 3:
        i = rng.randrange(1, len(words) - 1)  # repeat "KEY VALUE" with the same value: last-wins would hide it
        if words[i] and words[i + 1]:
            words[i + 2:i + 2] = [words[i], words[i + 1]]
    elif how == "cut":
        return how, text[: rng.randrange(len(text) - 1) + 1].rstrip("\n") if rng.random() < 0.5 else text[:-1]
    elif how == "odd":
        line = lines[k]
        at = rng.randrange(len(line) + 1)
        lines[k] = line[:at] + rng.choice(ODD) + line[at:]
        return how, "\n".join(lines) + "\n"
    else:
        numbers = [i for i, w in enumerate(words) if re.fullmatch(r"[0-9]+", w)]
        if numbers:
            words[rng.choice(numbers)] = rng.choice(HUGE)
    lines[k] = " ".join(words)
    return how, "\n".join(lines) + "\n"


def test_mutants_are_errors_with_file_and_line_or_kept() -> None:
    rng = random.Random(19)
    counts = {"mutants": 0, "errors": 0, "changed": 0}
    for source, kind, text, options in FILES:
        original = _records(kind, text, source, options)
        for _ in range(MUTANTS_PER_FILE):
            how, mutant = _mutate(rng, text)
            if mutant == text:
                continue
            counts["mutants"] += 1
            try:
                result = _records(kind, mutant, source, options)
            except ParseError as err:
                counts["errors"] += 1
                assert str(err).startswith(f"{source}:{err.line}: ")
                assert 1 <= err.line <= mutant.count("\n") + 1, (how, str(err))
                continue
            assert how != "cut" or mutant.endswith("\n"), f"{source}: a cut-off end was accepted"
            assert result != original, f"{source}: {how} mutant parsed to the same result:\n{mutant[-300:]!r}"
            counts["changed"] += 1
    assert counts["mutants"] > 500 and counts["errors"] > counts["mutants"] / 2, counts
    print(counts)


@pytest.mark.parametrize("char", ["\x0c", "\x85", "\x1c", "\u2028", "\r"])
def test_odd_characters_do_not_shift_line_numbers(char: str) -> None:
    text = f"0:\tfrom all lookup local\n1:\tfrom all{char} lookup 5\n2:\tfrom all lookup ma!n\n"
    with pytest.raises(ParseError) as err:
        parse("ip-rule", text, "r.txt")
    assert err.value.line == 2


def test_long_lines_are_errors() -> None:
    """Lines of 200k characters: a regex that backtracks quadratically would take hours here, so
    the suite would not finish (no clock is read: the static check below names the cause)."""
    line = "trace id 1a ip mangle PREROUTING rule " + " x" * 200_000 + " \n"
    with pytest.raises(ParseError, match=r"r\.txt:1: "):
        parse("nft-trace", line, "r.txt")
    for kind in ("ip-rule", "ip-route", "sysctl", "kubectl", "cni-log", "jsonl", "iptables-save", "ip-addr"):
        with pytest.raises(ParseError, match=r"r\.txt:1: "):
            parse(kind, "x" + " \t" * 100_000 + "y\n", "r.txt")


_REPEATS = (_const.MAX_REPEAT, _const.MIN_REPEAT, _const.POSSESSIVE_REPEAT)


def _unbounded(items: Any) -> Iterator[Any]:
    """Yield the bodies of the unbounded repeats (``*``, ``+``, ``{n,}``) in parsed regex items."""
    for op, arg in items:
        if op in _REPEATS:
            if arg[1] == _const.MAXREPEAT:
                yield arg[2]
            yield from _unbounded(arg[2])
        elif op in (_const.SUBPATTERN, _const.ATOMIC_GROUP):
            yield from _unbounded(arg[-1])
        elif op is _const.BRANCH:
            for branch in arg[1]:
                yield from _unbounded(branch)


def _ambiguous(items: Any, state: Any) -> Iterator[str]:
    """Yield a reason for each loop that can backtrack super-linearly: a repeat of more than once
    whose body holds an unbounded repeat, unless each round starts with a literal character that
    the inner repeat cannot match (a separator, as in ``x(?: x)*`` or ``a(?:\\.b+)+``)."""
    for op, arg in items:
        if op in _REPEATS:
            body = list(arg[2])
            while len(body) == 1 and body[0][0] is _const.SUBPATTERN:
                body = list(body[0][1][-1])
            inner = list(_unbounded(body))
            if arg[1] > 1 and inner:
                first = body[0]
                sep = chr(first[1]) if first[0] is _const.LITERAL else None
                if sep is None or any(_compiler.compile(_parser.SubPattern(state, list(b)), 0).fullmatch(sep) for b in inner):
                    yield f"a repeated group holds an unbounded repeat that can also match its start ({sep!r})"
            yield from _ambiguous(arg[2], state)
        elif op in (_const.SUBPATTERN, _const.ATOMIC_GROUP):
            yield from _ambiguous(arg[-1], state)
        elif op is _const.BRANCH:
            for branch in arg[1]:
                yield from _ambiguous(branch, state)
        elif op in (_const.ASSERT, _const.ASSERT_NOT):
            yield from _ambiguous(arg[1], state)


def _patterns() -> Iterator[tuple[str, int, str]]:
    """Yield (file, line, pattern) of every regex literal that src/ambientlab passes to re."""
    root = Path(__file__).resolve().parents[1] / "src" / "ambientlab"
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                yield str(path.relative_to(root)), node.lineno, node.args[0].value


def test_no_regex_loop_is_ambiguous() -> None:
    """A quantifier inside a quantified group ((a+)+b, (\\w+\\s?)+$) can backtrack exponentially: where the
    package nests one, each round starts with a separator the inner repeat cannot match."""
    found = list(_patterns())
    assert len(found) > 40, "the scan found the package's regexes"
    nested = [f"{f}:{line}: {p}: {why}" for f, line, p in found
              for parsed in [_parser.parse(p)] for why in _ambiguous(parsed, parsed.state)]
    assert not nested, nested


@pytest.mark.parametrize(("pattern", "bad"), [(r"(a+)+b", True), (r"(\w+\s?)+$", True), (r"(?:x+y?)*", True),
                                              (r"x(?: [^ ]+)*", False), (r"(?:\.[0-9]+)?", False), (r"(?::[0-9]{2})*", False)])
def test_the_regex_check_tells_loops_apart(pattern: str, bad: bool) -> None:
    parsed = _parser.parse(pattern)
    assert bool(list(_ambiguous(parsed, parsed.state))) is bad

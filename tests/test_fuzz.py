"""Seeded mutation fuzzing of the capture files: a repeated key, a cut-off end, odd characters and
out-of-range numbers must each give a ParseError naming file and line, or a different result;
never the same result (a token lost silently), another exception, or a hang."""

from __future__ import annotations

import json
import random
import re
import time
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
    started = time.perf_counter()
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
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("char", ["\x0c", "\x85", "\x1c", "\u2028", "\r"])
def test_odd_characters_do_not_shift_line_numbers(char: str) -> None:
    text = f"0:\tfrom all lookup local\n1:\tfrom all{char} lookup 5\n2:\tfrom all lookup ma!n\n"
    with pytest.raises(ParseError) as err:
        parse("ip-rule", text, "r.txt")
    assert err.value.line == 2


def test_long_lines_take_linear_time() -> None:
    line = "trace id 1a ip mangle PREROUTING rule " + " x" * 200_000 + " \n"
    started = time.perf_counter()
    with pytest.raises(ParseError, match=r"r\.txt:1: "):
        parse("nft-trace", line, "r.txt")
    for kind in ("ip-rule", "ip-route", "sysctl", "kubectl", "cni-log", "jsonl", "iptables-save", "ip-addr"):
        with pytest.raises(ParseError, match=r"r\.txt:1: "):
            parse(kind, "x" + " \t" * 100_000 + "y\n", "r.txt")
    assert time.perf_counter() - started < 5

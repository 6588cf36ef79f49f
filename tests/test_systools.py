"""The one list of system tools (ambientlab.live.systools) is complete and everything follows it:
the tools that src/ and tests/ run are all listed, the README's install line and .ci/run come
from it, and every third-party package that src/ imports is declared in pyproject.toml."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from ambientlab.live import systools
from ambientlab.live.checkenv import pins
from tests.conftest import ROOT
from tests.toolaudit.sitecustomize import undeclared

SOURCES = ("src", "tests", "benchmarks")
RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "execvp", "execv", "execvpe", "spawn"}


def _words(node: ast.expr) -> list[str | None]:
    """Return the constant strings of a list/tuple literal (None where not constant)."""
    return [e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else None
            for e in getattr(node, "elts", [])]


def _first_word(node: ast.expr) -> str | None:
    """Return the first word of a command line given as a string or an f-string, or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        text = str(node.values[0].value)
        if len(node.values) > 1 and not text.endswith(" "):
            return None  # the first word is computed
    else:
        return None
    words = text.split()
    return words[0] if words else None


def _heads(argv: list[str | None], line_of: ast.expr | None = None) -> Iterator[str]:
    """Yield the programs an argv literal runs: its first word, what ``ip netns exec NS`` runs,
    and the first word of an ``sh -c`` script."""
    while argv and argv[0]:
        yield argv[0]
        if argv[0] == "ip" and argv[1:3] == ["netns", "exec"] and len(argv) > 4:
            argv = argv[4:]
        elif argv[0] == "sh" and len(argv) > 2 and argv[1] == "-c" and argv[2]:
            word = argv[2].split()[0] if argv[2].split() else None
            argv = [word] if word and re.fullmatch(r"[a-z][a-z0-9_.-]*", word) else []
        else:
            return


def commands_in(path: Path) -> Iterator[tuple[str, int]]:
    """Yield (program, line) for every program ``path`` runs at a literal command site:
    argv lists given to subprocess/os.exec*, ``X.run(name, "tool", …)`` (a namespace or a lab
    host), ``plan.add(host, why, "tool", …)``, the command lines of ``X.script(name, [...])``,
    ``shutil.which("tool")``, and any argv literal that starts ``ip netns exec``. (Commands built
    from data, such as the feature probes, are caught when they run: see conftest's audit.)"""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            words = _words(node)
            if words[:3] == ["ip", "netns", "exec"]:
                yield from ((h, node.lineno) for h in _heads(words))
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        args = node.args
        if name in RUNNERS and args and isinstance(args[0], (ast.List, ast.Tuple)):
            yield from ((h, node.lineno) for h in _heads(_words(args[0])))
        elif name in ("execvp", "which") and args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
            yield args[0].value, node.lineno
        elif (name == "run" and isinstance(node.func, ast.Attribute) and len(args) > 1
              and not isinstance(args[0], (ast.List, ast.Tuple, ast.Starred))):
            rest = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in args[1:]]
            yield from ((h, node.lineno) for h in _heads(rest))
        elif name == "add" and len(args) > 2 and isinstance(args[2], ast.Constant) and isinstance(args[2].value, str):
            yield args[2].value, node.lineno
        elif name == "script" and len(args) > 1 and isinstance(args[1], (ast.List, ast.Tuple)):
            for line in args[1].elts:
                word = _first_word(line)
                if word:
                    yield word, line.lineno


def test_every_tool_that_src_and_tests_run_is_listed() -> None:
    found: dict[str, list[str]] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for program, line in commands_in(path):
                found.setdefault(program, []).append(f"{path.relative_to(ROOT)}:{line}")
    unlisted = {p: where for p, where in found.items() if p not in systools.BY_NAME}
    assert not unlisted, f"tools run but not in ambientlab.live.systools.TOOLS: {unlisted}"
    # the scan sees the tools it must: the ones the 2026-11 fresh-machine run missed among them
    assert {"ip", "iptables-restore", "ipset", "nft", "conntrack", "tcpdump", "sysctl", "chromium", "git"} <= set(found)


def test_the_scan_finds_a_tool_at_each_kind_of_command_site(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'subprocess.run(["ip", "netns", "exec", ns, "one", "-L"])\n'
        'ns.run("node", "two", "-x")\n'
        'lab.run(host, "sh", "-c", "three -a 2>&1")\n'
        'plan.add(host, why, "four", "link")\n'
        'ns.script("node", [f"five add {x}", "six up", f"{computed} x"])\n'
        'shutil.which("seven")\n'
        'os.execvp("eight", ["eight"])\n'
        'argv = ["ip", "netns", "exec", name, "ten"]\n'
        'subprocess.Popen([sys.executable, "-c", "x"])\n')
    found = [p for p, _ in commands_in(sample)]
    assert set(found) == {"ip", "one", "two", "sh", "three", "four", "five", "six", "seven", "eight", "ten"}


def test_the_audit_of_started_programs_catches_an_unlisted_one(tmp_path: Path) -> None:
    audit = tmp_path / "audit.txt"
    env = {**os.environ, "AMBIENTLAB_TOOL_AUDIT": str(audit),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "toolaudit"), str(ROOT / "src")])}
    code = ("import subprocess, sys\n"
            "subprocess.run(['true'])\n"
            "subprocess.run(['ip', 'netns', 'exec', 'x', 'env'], capture_output=True)\n"
            "subprocess.run([sys.executable, '-c', 'import os; os.system(\"\")'])\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    records = audit.read_text().splitlines()
    assert set(undeclared(records, systools.BY_NAME)) == {"true", "env"}
    assert any(r.startswith("ip\t") for r in records)


def test_the_readme_install_line_and_ci_follow_the_list() -> None:
    readme = (ROOT / "README.md").read_text()
    assert systools.install_line() in readme, f"the README must say: {systools.install_line()}"
    lines = [line for line in readme.splitlines() if "apt-get install" in line]
    assert all(systools.install_line() in line for line in lines), lines
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "apt-get install" in line]
    assert len(ci) == 1 and ci[0].split("-q ", 1)[1].split() == systools.packages(), ci
    pinned = {_normal(name) for name in pins()}
    assert {_normal(t.package) for t in systools.TOOLS if t.kind == systools.VENV} <= pinned
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\btools\b", makefile, re.M) and re.search(r"^check: .*\btools\b", makefile, re.M)


def test_the_list_can_be_read_without_the_venv() -> None:
    done = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "src" / "ambientlab" / "live" / "systools.py"), "packages"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == systools.packages()


def _top_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_pyproject_declares_every_package_src_imports() -> None:
    imported = {m for p in (ROOT / "src").rglob("*.py") for m in _top_modules(p)}
    third = imported - set(sys.stdlib_module_names) - {"ambientlab"}
    owners = metadata.packages_distributions()
    needed = {_normal(owners[m][0]) for m in third}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {_normal(re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0]) for d in declared}
    assert needed == names, f"imported but not declared: {needed - names}; declared, not imported: {names - needed}"

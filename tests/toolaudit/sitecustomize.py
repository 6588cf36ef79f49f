"""Records every program a Python process of the test session starts (tests/test_systools.py).

The test session puts this folder on PYTHONPATH and names a file in AMBIENTLAB_TOOL_AUDIT, so every
Python it starts (the CLI, the lab's stand-ins inside namespaces, notebook kernels) loads this
module at start-up and appends one line per program started: its name and where PATH finds it.
``ip netns exec NS PROGRAM …`` is recorded as PROGRAM (and ``ip``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Collection


def _argv_of(event: str, args: tuple[object, ...]) -> list[str]:
    if event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        words = [argv] if isinstance(argv, (str, bytes, os.PathLike)) else list(argv or [])  # type: ignore[arg-type]
        if executable is not None:
            words = [executable, *words[1:]]
        return [os.fsdecode(w) for w in words if isinstance(w, (str, bytes, os.PathLike))]
    if event in ("os.exec", "os.posix_spawn"):
        return [os.fsdecode(args[0]), *[os.fsdecode(w) for w in list(args[1])[1:]]]  # type: ignore[arg-type]
    return []


def programs(argv: list[str]) -> list[str]:
    """Return the programs an argv starts: its first word, and what ``ip netns exec NS`` runs."""
    out = []
    while argv:
        out.append(argv[0])
        if os.path.basename(argv[0]) == "ip" and argv[1:3] == ["netns", "exec"] and len(argv) > 4:
            argv = argv[4:]
        else:
            break
    return out


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event not in ("subprocess.Popen", "os.exec", "os.posix_spawn"):
        return
    target = os.environ.get("AMBIENTLAB_TOOL_AUDIT")
    if not target:
        return
    try:
        lines = []
        for program in programs(_argv_of(event, args)):
            found = program if os.sep in program else shutil.which(program) or ""
            lines.append(f"{program}\t{found}\n")
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, "".join(lines).encode())
        finally:
            os.close(fd)
    except Exception:
        pass


def undeclared(records: list[str], listed: Collection[str]) -> dict[str, str]:
    """Return {program: where PATH found it} for the audit's records (``program<TAB>path``) of
    programs that are neither ``listed``, nor Python, nor installed in the venv, nor a test's fake
    (under the temporary folder)."""
    out = {}
    skip = (os.path.realpath(sys.prefix), os.path.realpath(tempfile.gettempdir()))
    for record in records:
        program, _, found = record.partition("\t")
        name = os.path.basename(program)
        real = os.path.realpath(found or program)
        if name in listed or real.startswith(skip) or name.startswith("python") or real == os.path.realpath(sys.executable):
            continue
        out[name] = found or program
    return out


def install() -> None:
    """Install the hook in this process (once)."""
    if not getattr(sys, "_ambientlab_tool_audit", False):
        sys._ambientlab_tool_audit = True  # type: ignore[attr-defined]
        sys.addaudithook(_hook)


if os.environ.get("AMBIENTLAB_TOOL_AUDIT"):
    install()

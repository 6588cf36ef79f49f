"""`make bench`: every benchmark in one run, written as CSV under benchmarks/results/ with the
machine's description. Root (the inputs and the kernel baselines live in namespaces)."""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import book, parsers, route_get

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """Return the machine's description: CPU model and count, memory, kernel, Python, date."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip():
        rev += "+uncommitted changes"
    return {"date": datetime.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(), "commit": rev}


def _write(name: str, rows: list[dict[str, Any]]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path


def main() -> int:
    """Run the benchmarks and write the CSV files; return 1 if an answer differed."""
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--quick", action="store_true", help="smaller inputs, no make test (a smoke run)")
    opts = args.parse_args()
    started = time.perf_counter()
    # Every CSV is written at the end: the book's measurement copies the repository, whose
    # appendix notebook must still match the CSV files it was executed with.
    out: dict[str, list[dict[str, Any]]] = {"machine": [{"key": k, "value": v} for k, v in machine().items()]}
    # the tracer first, in a process that has not yet built large parse results
    tracer = route_get.measure(10_000 if opts.quick else route_get.COUNT)
    out["tracer"] = [{"measure": k, "value": v} for k, v in tracer.items()]
    print(f"route get: tracer {tracer['tracer_s']:.3f} s, kernel {tracer['kernel_s']:.3f} s, ratio {tracer['ratio']:.2f} "
          f"(goal <= 1.0), {tracer['different']} answers differ; walk {tracer['walk_ms']:.1f} ms")
    sizes = {k: v[:2] for k, v in parsers.SIZES.items()} if opts.quick else parsers.SIZES
    rows = parsers.measure(sizes)
    out["parsers"] = rows
    for row in rows:
        print(f"{row['kind']:14} {row['lines']:>7,} lines  {row['parser']:16} {row['seconds']:8.4f} s "
              f"{row['lines_per_s']:>12,.0f} lines/s  peak {row['peak_mib']:7.1f} MiB")
    found = book.measure(with_test=not opts.quick)
    per = found.pop("notebooks")
    pages = found.pop("walk_pages_mb")
    out["book"] = [{"measure": k, "value": v, "goal": book.GOALS.get(k) or "",
                    "met": "" if not book.GOALS.get(k) else v <= book.GOALS[k]} for k, v in found.items()]
    out["notebooks"] = [{"notebook": k, "seconds": v} for k, v in per.items()]
    out["pages"] = [{"page": k, "mb": v, "goal": book.GOALS["walk_page_max_mb"]} for k, v in pages.items()]
    for name, rows in out.items():
        _write(name, rows)
    for k, v in found.items():
        print(f"{k:18} {v:10.2f}" + (f"   goal <= {book.GOALS[k]}" if book.GOALS.get(k) else ""))
    print(f"all benchmarks: {time.perf_counter() - started:.0f} s; CSV in {RESULTS}")
    print("now re-execute notebooks/A1-benchmarks.ipynb, which plots these files")
    return 1 if tracer["different"] else 0


if __name__ == "__main__":
    sys.exit(main())

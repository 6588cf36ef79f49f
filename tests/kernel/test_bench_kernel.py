"""`make bench`'s measuring code, run on small inputs (the kernel's answers need namespaces)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.kernel


def test_the_benchmark_harness_runs_on_small_inputs(netns_ok: None) -> None:
    """`make bench`'s measuring code on tiny inputs (no timing is asserted): every parser reads
    the real outputs, and the tracer's answers equal the kernel's."""
    from benchmarks import parsers, route_get

    rows = parsers.measure({"ip-route": (300,), "ip-rule": (100,), "ipset": (100,), "iptables-save": (50,)}, repeat=1)
    assert {(r["kind"], r["parser"]) for r in rows} == {
        ("ip-route", "ambientlab"), ("ip-route", "jc"), ("ip-route", "json.loads (-j)"), ("ip-rule", "ambientlab"),
        ("ip-rule", "json.loads (-j)"), ("ipset", "ambientlab"), ("iptables-save", "ambientlab")}
    assert all(r["lines"] >= 50 and r["seconds"] > 0 for r in rows)
    found = route_get.measure(300, repeats=1)
    assert found["different"] == 0 and found["queries"] == 300

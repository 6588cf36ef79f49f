"""The tracer's ``route get`` against the kernel's, on the demo node and ztunnel pod (rebuilt in
namespaces, the tracer reading the capture) and on seeded random configurations."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest

from ambientlab import load_capture
from ambientlab.core.trace import Host, host_from_capture, host_from_texts
from ambientlab.core.trace.batch import Query
from ambientlab.live.kernel import disagreements
from ambientlab.live.netns import NamespaceSet
from ambientlab.live.nodes import ZTUNNEL
from ambientlab.live.outputs import SYSCTL
from ambientlab.live.reconstruct import build
from tests.randomconfig import SETUP, random_queries, route_commands, rule_commands

pytestmark = pytest.mark.kernel
MARKS = [0, 0x40, 0x80, 0x100, 0x140, 0x200, 0x210, 0x220, 0x300, 0x400, 0x401, 0x402, 0x4D2, 0x4D3, 0xFD3]
ADDRESSES = {
    "node": ["10.244.2.1", "10.244.2.2", "10.244.2.3", "10.244.2.4", "10.244.2.5", "10.244.2.7", "10.244.2.8",
             "10.244.2.10", "10.244.2.255", "10.96.183.192", "10.244.1.23", "10.244.1.19", "10.244.0.6",
             "192.168.126.1", "192.168.126.2", "192.168.127.1", "192.168.127.2", "192.168.127.3",
             "172.18.0.1", "172.18.0.2", "172.18.0.4", "172.18.255.255", "127.0.0.1", "8.8.8.8", "255.255.255.255"],
}
ADDRESSES[ZTUNNEL.veth] = ADDRESSES["node"]
CAPTURE_HOSTS = {"node": "node", ZTUNNEL.veth: "ztunnel"}


@pytest.fixture(scope="module")
def demo(netns_ok: None) -> Iterator[NamespaceSet]:
    """The demo node, its pods and ztunnel, built once for this module."""
    with NamespaceSet() as ns:
        build(ns)
        yield ns


def _report(found: list[str], total: int) -> None:
    assert not found, f"{len(found)} of {total} answers differ:\n" + "\n".join(found[:20])


@pytest.mark.parametrize("name", ["node", ZTUNNEL.veth])
def test_fixed_matrix_agrees_with_the_kernel(demo: NamespaceSet, name: str) -> None:
    host = host_from_capture(load_capture("kind-2022-ambient-worker2"), CAPTURE_HOSTS[name])
    addrs = ADDRESSES[name]
    queries = [Query(dst, None, None, mark) for dst, mark in itertools.product(addrs, MARKS)]
    sources = ["10.244.2.3", "10.244.2.4", "10.244.2.7", "10.244.2.10", "10.244.2.1", "10.244.1.19",
               "192.168.126.2", "192.168.127.2", "172.18.0.1", "127.0.0.1"]
    queries += [Query(dst, src, None, mark) for dst, src, mark in itertools.product(addrs, ["10.244.2.1", "10.244.2.10"], MARKS)]
    queries += [Query(dst, src, iif, mark) for dst, src, iif, mark
                in itertools.product(addrs, sources, list(host.devices), MARKS)]
    _report(disagreements(host, demo, name, queries), len(queries))
    assert len(queries) > 15_000


@pytest.mark.parametrize("name", ["node", ZTUNNEL.veth])
def test_random_queries_agree_with_the_kernel(demo: NamespaceSet, name: str) -> None:
    host = host_from_capture(load_capture("kind-2022-ambient-worker2"), CAPTURE_HOSTS[name])
    queries = random_queries(random.Random(name), list(host.devices), ADDRESSES[name], 2500, MARKS)
    _report(disagreements(host, demo, name, queries), len(queries))


def _host_of_namespace(ns: NamespaceSet, name: str) -> Host:
    def run(*argv: str) -> str:
        return ns.run(name, *argv)

    return host_from_texts(name, run("ip", "rule"), run("ip", "-4", "route", "show", "table", "all"),
                           run("ip", "addr"), run(*SYSCTL))


@pytest.mark.parametrize("seed", range(1, 9))
def test_random_configurations_agree_with_the_kernel(namespaces: NamespaceSet, seed: int) -> None:
    namespaces.add("r", {"net.ipv4.ip_forward": str(seed % 2), "net.ipv4.conf.all.rp_filter": str(seed % 3),
                         "net.ipv4.conf.all.accept_local": str(seed // 4 % 2)})
    namespaces.run("r", "ip", "-batch", "-", stdin="".join(f"{line}\n" for line in SETUP if ":" not in line))
    rng = random.Random(seed)
    # realms are not modelled (the tracer rejects them), so the configurations leave them out
    commands = [c[3:] for c in rule_commands(rng, 60) + route_commands(rng, 300) if c.startswith("-4") and "realm" not in c]
    out = namespaces.run("r", "sh", "-c", "ip -force -batch - 2>&1", stdin="\n".join(commands) + "\n", check=False)
    assert out.count("Command failed") < len(commands) / 3
    host = _host_of_namespace(namespaces, "r")
    assert len(host.fib.rules) > 30 and sum(len(t.routes) for t in host.fib.tables.values()) > 150
    addresses = [f"10.{a}.{b}.{c}" for a in range(3) for b in range(2) for c in (1, 2, 9, 77, 255)]
    queries = random_queries(rng, [*host.devices, "p0", "p1"], addresses, 2000, [0, 0x40, 0x100, 0x200, 0x210, 0x4D3])
    _report(disagreements(host, namespaces, "r", queries), len(queries))


@pytest.mark.parametrize("seed", range(1, 4))
def test_rule_less_namespaces_agree_with_the_kernel(namespaces: NamespaceSet, seed: int) -> None:
    """A namespace with only the three default rules (every pod) keeps local and main merged:
    one longest-prefix lookup over both, answers reported from table main."""
    namespaces.add("m", {"net.ipv4.ip_forward": str(seed % 2), "net.ipv4.conf.all.rp_filter": str(seed % 3)})
    namespaces.run("m", "ip", "-batch", "-", stdin="".join(f"{line}\n" for line in SETUP if ":" not in line))
    rng = random.Random(1000 + seed)
    commands = [c[3:] for c in route_commands(rng, 250, ("main", "main", "local", "default")) if c.startswith("-4")
                and "realm" not in c]
    commands += ["route add 127.0.0.5/32 dev v0", "route add local 10.0.1.0/24 dev v1 table main",
                 "route add 10.0.0.1/32 dev v1 table main"]
    namespaces.run("m", "sh", "-c", "ip -force -batch - 2>&1", stdin="\n".join(commands) + "\n", check=False)
    host = _host_of_namespace(namespaces, "m")
    assert host.fib.merged is not None and len(host.fib.rules) == 3
    addresses = [f"10.{a}.{b}.{c}" for a in range(3) for b in range(2) for c in (1, 2, 9, 77, 255)] + ["127.0.0.5", "127.0.0.6"]
    queries = random_queries(rng, [*host.devices, "p0", "p1"], addresses, 1500, [0, 0x100])
    answers = [host.route_get(q.dst, q.src, q.iif, q.mark) for q in queries]
    assert not any("table" in a and a["table"] == "local" for a in answers)
    assert sum(a.get("type") == "local" for a in answers) > 20
    _report(disagreements(host, namespaces, "m", queries), len(queries))

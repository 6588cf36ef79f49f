"""The constructs of issue 19, one by one: today's real outputs parse and render back, and
repeated keys, cut-off ends and out-of-range numbers are errors naming file and line."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from ambientlab import ParseError, load_capture
from ambientlab.cli.main import main
from ambientlab.core.parse import (
    EMPTY,
    KINDS,
    parse,
    parse_iptables_save,
    render_iptables_save,
    render_route,
    render_rule,
    to_records,
)
from ambientlab.core.trace import host_from_texts

ADDR = """\
2: ens5: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9001 qdisc mq state UP group default qlen 1000
    link/ether 0a:1b:2c:3d:4e:5f brd ff:ff:ff:ff:ff:ff
    altname enp0s5
    inet6 2001:db8::5e4/128 scope global dynamic noprefixroute
       valid_lft 440sec preferred_lft 140sec
    inet6 2001:db8::9c:1/64 scope global temporary dynamic
       valid_lft 86398sec preferred_lft 14398sec
    inet6 fe80::81b:2cff:fe3d:4e5f/64 scope link proto kernel_ll
       valid_lft forever preferred_lft forever
3: can0: <NOARP,UP,LOWER_UP,ECHO> mtu 16 qdisc pfifo_fast state UP group default qlen 10
    link/can
"""


def test_ip_addr_of_current_systems() -> None:
    (ens5, can0) = to_records("ip-addr", parse("ip-addr", ADDR, "a.txt"))
    assert ens5["altnames"] == ["enp0s5"]
    assert [a.get("protocol") for a in ens5["addr_info"]] == [None, None, "kernel_ll"]
    assert ens5["addr_info"][1]["temporary"] is True and ens5["addr_info"][1]["dynamic"] is True
    assert can0["link_type"] == "can" and "address" not in can0 and can0["addr_info"] == []


def test_ip_4_addr_has_no_link_lines_but_a_mix_is_an_error() -> None:
    text = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n"
            "    inet 127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n"
            "2: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default\n"
            "    altname enp1s0\n    inet 10.0.0.2/24 brd 10.0.0.255 scope global eth0\n"
            "       valid_lft forever preferred_lft forever\n")
    assert [r["ifname"] for r in to_records("ip-addr", parse("ip-addr", text))] == ["lo", "eth0"]
    mixed = text + ADDR.split("3: can0")[0].replace("2: ens5", "4: ens5")
    with pytest.raises(ParseError, match=r"m\.txt:1: interface without a link/ line: 'lo'"):
        parse("ip-addr", mixed, "m.txt")


@pytest.mark.parametrize(("text", "line", "token"), [
    ("1: lo: <UP> mtu 1 mtu 2\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n", 1, "mtu"),
    ("1: lo@: <UP> mtu 1\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n", 1, "lo@"),
    ("1: lo: <UP> mtu 1\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
     "    inet 127.0.0.1/8 scope host scope link lo\n       valid_lft forever preferred_lft forever\n", 3, "scope"),
    ("1: lo: <UP> mtu 1\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
     "    inet 2001:db8::1/64 scope host\n       valid_lft forever preferred_lft forever\n", 3, "2001:db8::1"),
    ("1: lo: <UP> mtu 1\n    link/ether 00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0 promiscuity 7\n", 2,
     "promiscuity"),
    ("1: g: <UP> mtu 1\n    link/ether 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    geneve id 1000 id 2000\n", 3, "id"),
    ("1: lo: <UP> mtu 1\u0661\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n", 1, "1\u0661"),
])
def test_ip_link_and_addr_errors(text: str, line: int, token: str) -> None:
    with pytest.raises(ParseError) as err:
        parse("ip-addr", text, "f.txt")
    assert err.value.line == line and token in err.value.token and str(err.value).startswith(f"f.txt:{line}: ")


def test_sysctl_empty_values_repeated_keys_and_slashes() -> None:
    text = ("net.ipv4.ip_local_reserved_ports = \ndev.cdrom.info = CD-ROM information, Id: cdrom.c 3.20 2003/12/17\n"
            "dev.cdrom.info = \ndev.cdrom.info = drive name:\t\tsr0\nfs.binfmt_misc.python3/5 = enabled\n"
            "net.ipv4.tcp_rmem = 4096\t131072\t6291456\n")
    rows = to_records("sysctl", parse("sysctl", text))
    assert rows[0] == {"key": "net.ipv4.ip_local_reserved_ports", "value": ""}
    assert [r["value"] for r in rows if r["key"] == "dev.cdrom.info"][2] == "drive name:\t\tsr0"
    assert rows[4]["key"] == "fs.binfmt_misc.python3/5" and rows[5]["value"] == "4096\t131072\t6291456"
    with pytest.raises(ParseError, match=r"s:3: key repeated .*'a.b'"):
        parse("sysctl", "a.b = 1\nc.d = 2\na.b = 3\n", "s")


IPSETS = """\
Name: KUBE-NODE-PORT-TCP
Type: bitmap:port
Revision: 3
Header: range 0-65535
Size in memory: 8268
References: 1
Number of entries: 2
Members:
30781
30915

Name: all
Type: list:set
Revision: 3
Header: size 8
Size in memory: 128
References: 0
Number of entries: 1
Members:
KUBE-NODE-PORT-TCP

Name: marks
Type: hash:ip,mark
Revision: 1
Header: family inet markmask 0xff hashsize 1024 maxelem 65536
Size in memory: 200
References: 0
Number of entries: 1
Members:
10.0.0.1,0x5

Name: macs
Type: hash:mac
Revision: 0
Header: hashsize 1024 maxelem 65536
Size in memory: 200
References: 0
Number of entries: 1
Members:
AA:BB:CC:DD:EE:FF

Name: timed
Type: hash:ip
Revision: 4
Header: family inet hashsize 1024 maxelem 65536 timeout 60
Size in memory: 200
References: 0
Number of entries: 1
Members:
10.0.0.1 timeout 3
10.0.0.2 timeout 0
"""


def test_ipset_headers_of_every_kind() -> None:
    sets = {s["name"]: s for s in to_records("ipset", parse("ipset", IPSETS))}
    assert sets["KUBE-NODE-PORT-TCP"]["range"] == "0-65535" and len(sets["KUBE-NODE-PORT-TCP"]["members"]) == 2
    assert sets["all"]["size"] == 8 and sets["marks"]["markmask"] == "0xff"
    assert "family" not in sets["macs"] and sets["macs"]["members"] == [{"elem": "AA:BB:CC:DD:EE:FF"}]
    assert len(sets["timed"]["members"]) == 2 and sets["timed"]["numentries"] == 1


@pytest.mark.parametrize(("old", "new", "token"), [
    ("hashsize 1024 maxelem", "hashsize 1024 hashsize 2048 maxelem", "hashsize"),
    ("10.0.0.1 timeout 3", "10.0.0.1 timeout 3 timeout 4", "timeout"),
    ("10.0.0.1,0x5", "2001:db8::1,0x5", "2001:db8::1"),
    ("Number of entries: 2", "Number of entries: 3", "30915"),
])
def test_ipset_errors(old: str, new: str, token: str) -> None:
    with pytest.raises(ParseError) as err:
        parse("ipset", IPSETS.replace(old, new, 1), "i.txt")
    assert token in err.value.token and str(err.value).startswith(f"i.txt:{err.value.line}: ")


def test_ip_rule_zero_mark_and_nop_as_iproute2_prints_them() -> None:
    text = "0:\tfrom all lookup local\n32764:\tfrom all nop\n32765:\tfrom all fwmark 0/0x100 lookup 101\n"
    records = to_records("ip-rule", parse("ip-rule", text))
    assert records[1] == {"priority": 32764, "src": "all", "nop": None}
    assert records[2]["fwmark"] == "0" and records[2]["fwmask"] == "0x100"
    assert "\n".join(render_rule(r) for r in records) + "\n" == text
    host = host_from_texts("h", text + "32766:\tfrom all lookup main\n", "10.0.0.0/8 dev eth0 table 101\n"
                           "local 10.0.0.1 dev eth0 table local proto kernel scope host src 10.0.0.1\n")
    assert host.route_get("10.1.2.3")["table"] == "101"
    assert host.route_get("10.1.2.3", mark=0x100)["error"] == "Network is unreachable"


@pytest.mark.parametrize(("line", "token"), [
    ("0:\tfrom all blackhole unreachable", "unreachable"),
    ("0:\tfrom all fwmark 0x1ffffffff lookup 5", "0x1ffffffff"),
    ("0:\tfrom all lookup 4294967296", "4294967296"),
    ("4294967296:\tfrom all lookup main", "4294967296"),
    ("0:\tfrom all ipproto tcp dport 70000 lookup main", "70000"),
    ("+5:\tfrom all lookup main", "+5:"),
    ("0:\tfrom all fwmark 00x1 lookup main", "00x1"),
])
def test_ip_rule_errors(line: str, token: str) -> None:
    with pytest.raises(ParseError) as err:
        parse("ip-rule", line + "\n", "r.txt")
    assert err.value.line == 1 and token in err.value.token


def test_a_cut_off_file_is_an_error_unless_the_caller_says_so() -> None:
    text = "0:\tfrom all lookup local\n32766:\tfrom all lookup ma"
    with pytest.raises(ParseError, match=r"r\.txt:2: the last line has no newline"):
        parse("ip-rule", text, "r.txt")
    assert to_records("ip-rule", parse("ip-rule", text, "r.txt", cut=True))[1]["table"] == "ma"


def test_ip_route_constructs_of_current_systems() -> None:
    text = ("10.7.0.0/24 via inet6 2001:db8::2 dev d0\n"
            "10.8.0.0/24 via 10.1.0.3 dev d0 rtt 10ms rttvar 1.5s features ecn rto_min lock 200ms congctl bbr\n"
            "10.9.0.0/24 nhid 10 via 10.1.0.2 dev d0\n")
    records = to_records("ip-route", parse("ip-route", text))
    assert records[0]["via"] == {"family": "inet6", "host": "2001:db8::2"} and "gateway" not in records[0]
    assert records[1]["metrics"] == [{"rtt": "10ms", "rttvar": "1.5s", "features": ["ecn"], "rto_min": "200ms",
                                      "congctl": "bbr"}]
    assert "\n".join(render_route(r) for r in records) + "\n" == text
    for bad, token in (("dev d0 metric 99999999999", "99999999999"), ("dev d0 metric 1_000", "1_000"),
                       ("via inet 2001:db8::2 dev d0", "2001:db8::2"), ("dev d0 rtt 10", "10")):
        with pytest.raises(ParseError) as err:
            parse("ip-route", f"10.0.0.0/8 {bad}\n", "t.txt")
        assert err.value.line == 1 and token in err.value.token
    with pytest.raises(ParseError, match="keyword repeated"):
        parse("route-get", "10.1.1.1 dev eth1\n    cache iif eth7 iif eth1\n")


def test_iptables_excerpt_mixed_dumps_and_escaped_quotes_render_exactly() -> None:
    demo = load_capture("kind-2022-ambient-worker2")
    excerpt = demo.text("node/iptables-save-mangle-excerpt.txt")
    assert render_iptables_save(parse_iptables_save(excerpt, excerpt=True)) == excerpt
    v4 = demo.text("node/iptables-save.txt")
    v6 = ("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
          ":POSTROUTING ACCEPT [0:0]\n-A PREROUTING -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m comment "
          "--comment \"it\\'s here\" -j ACCEPT\nCOMMIT\n")
    both = parse_iptables_save(v4 + v6)
    assert render_iptables_save(both, comments=True) == "".join(ln + "\n" for ln in (v4 + v6).split("\n") if ln.strip())
    last = both.rules.iloc[-1]
    assert last["rule"] == 1 and last["matches"][2]["options"][0]["args"] == ["it's here"]
    for bad, token in (("--dport 70000", "70000"), ("--set-xmark 0x1ffffffff/0x1", "0x1ffffffff")):
        rule = "-A PREROUTING -p tcp -m tcp " + bad if "dport" in bad else "-A PREROUTING -j MARK " + bad
        with pytest.raises(ParseError) as err:
            parse_iptables_save(f"*mangle\n:PREROUTING ACCEPT [0:0]\n{rule}\nCOMMIT\n", "x.txt")
        assert err.value.line == 3 and token in err.value.token


@pytest.mark.parametrize(("module", "rule"), [
    ("recent", "-m recent --rcheck --seconds 60 --hitcount 4 --name SSH --mask 255.255.255.255 --rsource -j DROP"),
    ("CT", "-p tcp -m tcp --dport 21 -j CT --helper ftp"),
    ("icmp6", "-p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT"),
    ("pkttype", "-m pkttype --pkt-type multicast -j ACCEPT"),
    ("sctp", "-p sctp -m sctp --dport 9 -j ACCEPT"),
    ("hashlimit", "-m hashlimit --hashlimit-upto 50/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name f -j ACCEPT"),
    ("TCPMSS", "-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"),
    ("NFLOG", "-j NFLOG --nflog-prefix \"it\\'s here\" --nflog-group 5"),
    ("ttl", "-m ttl --ttl-lt 5 -j ACCEPT"),
    ("time", "-m time --timestart 09:00:00 --timestop 17:00:00 --weekdays Mon,Tue --datestop 2038-01-19T03:14:07 -j ACCEPT"),
    ("connlimit", "-p tcp -m tcp --dport 80 -m connlimit --connlimit-above 10 --connlimit-mask 32 --connlimit-saddr -j REJECT"),
    ("nfacct", "-m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP"),
])
def test_iptables_modules_of_issue_19(module: str, rule: str) -> None:
    text = f"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT {rule}\nCOMMIT\n"
    parsed = parse_iptables_save(text)
    assert render_iptables_save(parsed) == text
    rec = parsed.rules.iloc[0]
    assert module in [m["module"] for m in rec["matches"]] + [rec["target"]]


def test_every_kind_decides_what_an_empty_file_means() -> None:
    assert set(EMPTY) == set(KINDS)
    for kind in KINDS:
        options = {"columns": ["NAME"]} if kind == "kubectl" else {}
        if EMPTY[kind].startswith("error"):
            with pytest.raises(ParseError, match=r"e\.txt:1: empty"):
                parse(kind, "", "e.txt", **options)
        else:
            assert len(to_records(kind, parse(kind, "", "e.txt", **options))) == 0


def test_kubectl_rejects_a_line_that_is_no_header() -> None:
    with pytest.raises(ParseError, match="k:1: not a kubectl header"):
        parse("kubectl", "hello world\n", "k")
    with pytest.raises(ParseError, match="k:1: a kubectl header without rows"):
        parse("kubectl", "NAME   READY\n", "k")


def test_nft_trace_and_jsonl_strictness() -> None:
    with pytest.raises(ParseError, match=r"j:2: key repeated in a JSON object: 'a'"):
        parse("jsonl", '{"a": 1}\n{"a": 1, "a": 2}\n', "j")
    with pytest.raises(ParseError, match="j:1: "):
        parse("jsonl", '{"a": NaN}\n', "j")


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return status, out.getvalue(), err.getvalue()


def test_route_get_batch_checks_every_line_first(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.write_text("0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n")
    routes = tmp_path / "routes"
    routes.write_text("10.0.0.0/8 dev eth0 proto kernel scope link src 10.0.0.1\n"
                      "local 10.0.0.1 dev eth0 table local proto kernel scope host src 10.0.0.1\n")
    addrs = tmp_path / "addrs"
    addrs.write_text("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n"
                     "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
                     "    inet 127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n"
                     "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default\n"
                     "    link/ether 02:00:00:00:00:01 brd ff:ff:ff:ff:ff:ff\n"
                     "    inet 10.0.0.1/8 scope global eth0\n       valid_lft forever preferred_lft forever\n")
    batch = tmp_path / "q"
    batch.write_text("# a comment, as ip -batch allows\nroute get 10.0.0.7  # trailing comment\n\n10.0.0.1 mark 0x0\n")
    files = ("--rules", str(rules), "--routes", str(routes), "--addrs", str(addrs))
    status, out, err = _cli("route-get", *files, "--batch", str(batch), "--json")
    assert status == 0 and err == ""
    answers = [json.loads(line) for line in out.splitlines()]
    assert answers[0]["dst"] == "10.0.0.7" and answers[1]["type"] == "local" and "table" not in answers[1]
    batch.write_text("route get 10.0.0.7\nroute get 10.0.0.300\n")
    status, out, err = _cli("route-get", *files, "--batch", str(batch), "--json")
    assert (status, out) == (2, "") and err.startswith(f"ambientlab: {batch}:2: ") and "10.0.0.300" in err
    for bad in ("10.0.0.7 mark 0x1ffffffff\n", "10.0.0.7 dport 70000\n", "10.0.0.7 from \"x\n", "10.0.0.7 iif a iif b\n"):
        batch.write_text("10.0.0.8\n" + bad)
        status, out, err = _cli("route-get", *files, "--batch", str(batch))
        assert (status, out) == (2, "") and err.startswith(f"ambientlab: {batch}:2: "), err


def test_parse_cli_takes_cut(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("0:\tfrom all lookup local")
    status, _, err = _cli("parse", "ip-rule", str(path))
    assert status == 2 and err.startswith(f"ambientlab: {path}:1: the last line has no newline")
    status, out, _ = _cli("parse", "ip-rule", str(path), "--cut", "--json")
    assert status == 0 and json.loads(out) == [{"priority": 0, "src": "all", "table": "local"}]


def test_a_rule_less_namespace_merges_local_and_main_until_a_rule_is_added() -> None:
    rules = "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
    routes = ("10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1\n127.0.0.5 dev eth0\n"
              "local 10.0.0.1 dev eth0 table local proto kernel scope host src 10.0.0.1\n"
              "local 127.0.0.0/8 dev lo table local proto kernel scope host src 127.0.0.1\n")
    pod = host_from_texts("pod", rules, routes)
    assert pod.fib.merged is not None
    local = pod.route_get("10.0.0.1")
    assert local["type"] == "local" and "table" not in local  # reported from main, as the kernel does
    assert pod.route_get("127.0.0.5")["dev"] == "eth0"  # one longest-prefix lookup over both tables
    node = host_from_texts("node", "0:\tfrom all lookup local\n5:\tfrom all fwmark 0x1 lookup 7\n" + rules.split("\n", 1)[1],
                           routes)
    assert node.fib.merged is None and node.route_get("10.0.0.1")["table"] == "local"
    assert node.route_get("127.0.0.5")["type"] == "local"

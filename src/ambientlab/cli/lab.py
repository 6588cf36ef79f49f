"""``ambientlab lab …``: the live lab's command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd

from ambientlab.core.constants import BEHAVIOURS, INPOD_LAB_WALKS, KUBE_PROXY_LAB_WALKS
from ambientlab.live.interrupts import Interrupted
from ambientlab.live.lab.plan import SECOND, TUNNELS
from ambientlab.live.lab.runtime import (
    DEFAULT_CAPTURE,
    DESIGNS,
    INPOD_CAPTURE,
    INPOD_RULES,
    Lab,
    LabError,
    open_lab,
    remove,
    running_labs,
    up,
)


def _lab(args: argparse.Namespace) -> Lab:
    return open_lab(args.prefix)


def _not_inpod(lab: Lab, command: str) -> None:
    if lab.state.get("design") == "inpod":
        raise LabError(f"`lab {command}` compares with the 2022 node-level tracer; this lab ({lab.prefix}) is in-pod. "
                       "Its walks are in notebooks/15-inpod.ipynb; here use `lab trace --walk inpod-outbound` "
                       "(or redirect-outbound), `lab connect` and `lab exec`")


def cmd_up(args: argparse.Namespace) -> int:
    """Build a lab and start its programs."""
    lab = up(args.capture, args.tunnel, args.prefix, args.ztunnel, args.nodes, args.design, args.kube_proxy,
             args.rules)
    second = f" + {lab.state['second_capture']}" if lab.state.get("second_capture") else ""
    tunnels = "no tunnels" if lab.state.get("design") == "inpod" else f"{lab.state['tunnel']} tunnels"
    print(f"lab {lab.prefix} is up in {lab.state['build_seconds']} s: {lab.state['capture']}{second}, "
          f"{tunnels}, ztunnel stand-in {lab.state['behaviour']}")
    for host in lab.state["hosts"]:
        where = lab.state["pods"].get(host) or lab.state.get("ztunnels", {}).get(host, "")
        if host == "peer":
            where = ", ".join(f"{ip} ({what})" for ip, what in lab.state["remote"].items())
        print(f"  {host:16} namespace {lab.full(host):28} {where}")
    if lab.state.get("design") == "inpod":
        print(f"try: ambientlab lab connect productpage-v1 reviews-v1 --prefix {lab.prefix}   (15001 in productpage-v1, "
              "15006 in reviews-v1)")
        print(f"     ambientlab lab exec productpage-v1 --prefix {lab.prefix} -- iptables-save")
        walk = "redirect-outbound" if lab.state["behaviour"] == "inpod-redirect" else "inpod-outbound"
        print(f"     ambientlab lab trace --walk {walk} --prefix {lab.prefix}   (the kernel against the tracer)")
        print(f"then: ambientlab lab down --prefix {lab.prefix}")
        return 0
    if second:
        print(f"try: ambientlab lab trace productpage-v1 worker-reviews-v1 --prefix {lab.prefix}   (HBONE)")
    print(f"try: ambientlab lab trace productpage-v1 reviews-v1 --prefix {lab.prefix}")
    if lab.state.get("kube_proxy"):
        print(f"     ambientlab lab trace --walk service-outside-mesh-remote --prefix {lab.prefix}   (kube-proxy's DNAT)")
    print(f"     ambientlab lab exec node --prefix {lab.prefix} -- ip rule")
    print(f"then: ambientlab lab down --prefix {lab.prefix}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print what a lab is and whether its kernel prints what the capture shows."""
    from ambientlab.live.lab.status import status

    lab = open_lab(args.prefix, built=False)
    found = status(lab)
    if args.json:
        print(json.dumps(found, indent=1))
        return 0 if lab.phase == "up" else 1
    for key, value in found.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k:34} {v}")
        elif isinstance(value, list):
            print(f"{key}: {', '.join(value) if value else '(none)'}")
        else:
            print(f"{key}: {value}")
    if lab.phase != "up":
        print("compared with the capture: not compared (the lab is not up)")
        return 1
    return 0 if all(v != "DIFFERENT" for v in found["compared with the capture"].values()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    """Tear a lab down (idempotent)."""
    prefixes = [args.prefix] if args.prefix else running_labs()
    if not prefixes:
        print("no lab is running")
    for prefix in prefixes:
        gone = remove(prefix)
        print(f"lab {prefix}: {len(gone)} namespaces deleted" if gone else f"lab {prefix}: nothing left to delete")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    """Run a command inside one lab host (replaces this process)."""
    argv = list(args.argv)
    if "--" not in argv:
        raise LabError(f"lab exec: write the command after `--`, e.g. ambientlab lab exec {args.host} --prefix PREFIX -- ip rule"
                       + (f" (got `{' '.join(argv)}` without one)" if argv else ""))
    cut = argv.index("--")  # options given after HOST, before `--`
    options, argv = argv[:cut], argv[cut + 1:]
    if options[:1] == ["--prefix"] and len(options) == 2:
        args.prefix = options[1]
    elif options:
        raise LabError(f"lab exec: unexpected {' '.join(options)} before --")
    if not argv:
        raise LabError("lab exec HOST -- COMMAND: no command given")
    os.execvp("ip", ["ip", "netns", "exec", _lab(args).full(args.host), *argv])
    return 0  # not reached


def cmd_connect(args: argparse.Namespace) -> int:
    """Open one connection and print the app's greeting and what ztunnel logged for it."""
    lab = _lab(args)
    ztunnels = [name for name in lab.state["processes"] if name.startswith(("ztunnel", "worker-ztunnel"))]
    before = {z: len(lab.events(z)) for z in ztunnels}
    print(lab.connect(args.source, args.destination, args.port, send=args.send))
    time.sleep(0.2)  # a tunnelled connection is logged when it closes
    for z in ztunnels:
        for event in lab.events(z)[before[z]:]:
            print(f"{z}:", json.dumps(event, sort_keys=True))
    return 0


def cmd_hbone(args: argparse.Namespace) -> int:
    """Open a bare HBONE connection (as ztunnel would) and print what the far side answers."""
    from ambientlab.live.lab.pki import write_pki

    lab = _lab(args)
    pki = None
    if args.untrusted:
        pki = lab.folder / "untrusted-pki"
        write_pki(pki, [args.account])
    print(lab.hbone(args.source, args.to, args.authority, args.account, pki))
    return 0


def cmd_sniff(args: argparse.Namespace) -> int:
    """Capture the underlay during one connection and print its frames and TLS records."""
    from ambientlab.core.parse.wire import plaintext_hits, read_pcap, tls_records
    from ambientlab.live.lab.wire import sniff

    lab = _lab(args)
    output, pcap = sniff(lab, lambda: lab.connect(args.source, args.destination, send=args.send))
    if args.write:
        Path(args.write).write_bytes(pcap)
    frames = pd.DataFrame(read_pcap(pcap, f"tcpdump in {lab.full('peer')}"))
    print(f"client: {output}")
    with pd.option_context("display.max_rows", None, "display.width", 250):
        print(frames.drop(columns="payload").to_string(index=False))
        print(tls_records(frames, 15008).to_string(index=False))
    for needle in ("hello from", args.send):
        hits = plaintext_hits(frames, needle)
        print(f"{needle!r} in the clear on the underlay: {', '.join(hits) if hits else 'nowhere'}")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    """Trace one connection in the kernel and print it next to the tracer's prediction."""
    from ambientlab.core.trace.nftrace import compare, kernel_segments
    from ambientlab.core.trace.predict import predict, predict_hbone
    from ambientlab.live.lab.nftrace import trace, trace_hbone, trace_inpod_walk, trace_walk

    lab = _lab(args)
    if not (lab.state.get("design") == "inpod" and args.walk):  # an in-pod lab traces its walks only
        _not_inpod(lab, "trace")
    broken = [b["piece"] for b in lab.state["breaks"]]
    if lab.state.get("design") == "inpod":
        output, texts, predicted = trace_inpod_walk(lab, args.walk)
    elif args.walk:
        output, texts, predicted = trace_walk(lab, args.walk)
    elif not (args.source and args.destination):
        raise LabError("`lab trace` needs SOURCE and DESTINATION, or --walk NAME")
    elif args.destination.startswith(SECOND) and not args.source.startswith(SECOND):
        if broken:
            raise LabError("an HBONE trace is compared on an intact lab: `ambientlab lab restore` first")
        output, texts, hconn = trace_hbone(lab, args.source, args.destination, args.sport)
        predicted = predict_hbone(hconn).hops
    else:
        output, texts, conn = trace(lab, args.source, args.destination, args.sport)
        predicted = predict(conn, broken).until_lost()
    if args.raw:
        for host, text in texts.items():
            print(f"== nft monitor trace in {lab.full(host)}\n{text}")
    table = compare(predicted, kernel_segments(texts, lab.prefix))
    print(f"client: {output}" + (f"   (broken: {', '.join(broken)})" if broken else ""))
    with pd.option_context("display.max_rows", None, "display.width", 250):
        for label, group in table.groupby("packet", sort=False):
            print(f"== {label}")
            print(group.drop(columns="packet").replace({True: "yes", False: "NO"}).to_string(index=False))
    agree = int(table["agree"].sum())
    print(f"{agree} of {len(table)} hooks agree (device and mark) between the kernel and the tracer")
    return 0 if agree == len(table) else 1


def cmd_break(args: argparse.Namespace) -> int:
    """Remove one piece from a lab (or list the pieces)."""
    from ambientlab.core.trace.breaks import PIECES
    from ambientlab.live.lab.breaks import break_piece

    if args.list or not args.piece:
        for name, piece in PIECES.items():
            print(f"{name:24} {piece.title}")
        return 0
    lab = _lab(args)
    _not_inpod(lab, "break")
    print(f"removed: {break_piece(lab, args.piece)}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Put back every piece removed with ``lab break``."""
    from ambientlab.live.lab.breaks import restore

    done = restore(_lab(args))
    print(f"restored: {', '.join(done)}" if done else "nothing was broken")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    """Record a running lab (or, with --session, the book's whole lab session) as a capture."""
    root = Path(args.dir)
    if args.session:
        from ambientlab.live.lab.session import record_session

        written = record_session(root, args.capture, args.tunnel)
    elif args.inpod_session:
        from ambientlab.live.lab.inpod_session import record_inpod_session

        written = record_inpod_session(root)
    elif args.hbone_session:
        from ambientlab.live.lab.hbone_session import record_hbone_session

        written = record_hbone_session(root, args.tunnel)
    else:
        from ambientlab.live.lab.record import record

        written = record(_lab(args), root)
    print(f"{root}: {len(written)} files and manifest.yaml written (origin: lab)")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    """Print the kernel features the lab needs or uses, probed in a throwaway namespace."""
    from ambientlab.live.lab.features import missing_required, pick_tunnel, probe_features

    found = probe_features()
    for f in found:
        print(f"[{' OK ' if f.ok else 'FAIL' if f.required else 'miss'}] {f.name}" + ("" if f.ok else f": {f.hint}"))
    print(f"tunnel the lab would use: {pick_tunnel(found)}")
    return 1 if missing_required(found) else 0


def add_lab_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``lab`` and its subcommands to the top-level subparsers ``sub``."""
    lab = sub.add_parser("lab", help="the live lab: the node rebuilt in network namespaces (root)")
    cmds = lab.add_subparsers(dest="lab_command", required=True)

    def command(name: str, func: object, text: str, prefix: bool = True) -> argparse.ArgumentParser:
        p = cmds.add_parser(name, help=text)
        if prefix:
            p.add_argument("--prefix", help="the lab's prefix (default: the only running lab)")
        p.set_defaults(func=func)
        return p

    p = command("up", cmd_up, "build a lab and start the stand-in ztunnel and the apps", prefix=False)
    p.add_argument("--capture", help=f"capture to rebuild (default: {DEFAULT_CAPTURE}, or {INPOD_CAPTURE} in-pod)")
    p.add_argument("--design", choices=DESIGNS, default="2022",
                   help="2022: node-level redirection; inpod: the rules in the pods' own namespaces")
    p.add_argument("--rules", choices=tuple(INPOD_RULES),
                   help="in-pod: Istio 1.22's rules (TPROXY, the default) or today's (REDIRECT, Istio 1.24+)")
    p.add_argument("--tunnel", choices=TUNNELS, help="tunnel type (default: geneve, else vxlan, else veth)")
    p.add_argument("--prefix", help="name prefix of the namespaces (default: a new unique one)")
    p.add_argument("--ztunnel", choices=sorted(BEHAVIOURS), default="marks-2022",
                   help="stand-in behaviour: Sept 2022 socket marks, or none as the 2023 Rust ztunnel")
    p.add_argument("--nodes", type=int, choices=(1, 2), default=1,
                   help="2: add the second node (ambient-worker, hosts worker-…) and speak HBONE between them")
    p.add_argument("--kube-proxy", action="store_true",
                   help="load kube-proxy's reconstructed chains on the node, and add details-v1 (outside the mesh)")
    p = command("status", cmd_status, "what the lab is, and whether it prints what the capture shows")
    p.add_argument("--json", action="store_true")
    command("down", cmd_down, "tear the lab down (all labs without --prefix; idempotent)")
    p = command("exec", cmd_exec, "run a command in a lab host: lab exec HOST -- CMD…")
    p.add_argument("host")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = command("connect", cmd_connect, "one connection: the app's greeting and ztunnel's log")
    p.add_argument("source")
    p.add_argument("destination", help="a lab host or an address")
    p.add_argument("--port", type=int, default=9080)
    p.add_argument("--send", default="", help="a line to send after the greeting (echoed back)")
    p = command("hbone", cmd_hbone, "a bare HBONE connection: CONNECT AUTHORITY to TO:15008 with a certificate")
    p.add_argument("to", help="a lab host or an address (port 15008)")
    p.add_argument("authority", help="the CONNECT target, IP:port")
    p.add_argument("--source", default="ztunnel", help="the lab host to connect from (default: %(default)s)")
    p.add_argument("--account", default="bookinfo-productpage", help="whose certificate (default: %(default)s)")
    p.add_argument("--untrusted", action="store_true", help="a certificate from another CA than the lab's")
    p = command("sniff", cmd_sniff, "tcpdump the underlay during one connection: frames and TLS records")
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--send", default="a line the app should never see in the clear")
    p.add_argument("--write", help="also write the pcap to this file")
    p = command("trace", cmd_trace, "one connection traced by the kernel, next to the tracer's prediction")
    p.add_argument("source", nargs="?")
    p.add_argument("destination", nargs="?")
    p.add_argument("--walk", choices=(*KUBE_PROXY_LAB_WALKS, *INPOD_LAB_WALKS),
                   help="instead: a kube-proxy walk (details-v1 to the reviews service; a lab up with --kube-proxy), "
                        "or an in-pod walk's first packet (inpod-outbound: 1.22 rules; redirect-outbound: today's)")
    p.add_argument("--sport", type=int, default=41234, help="the client's port (default: %(default)s)")
    p.add_argument("--raw", action="store_true", help="also print the raw nft monitor trace")
    p = command("break", cmd_break, "remove one piece of the redirection (--list: the pieces)")
    p.add_argument("piece", nargs="?")
    p.add_argument("--list", action="store_true")
    command("restore", cmd_restore, "put back every removed piece")
    p = command("record", cmd_record, "record the lab's outputs as a capture folder (origin: lab)")
    p.add_argument("dir")
    p.add_argument("--session", action="store_true",
                   help="build, trace and break two labs (one per ztunnel behaviour) and record it all")
    p.add_argument("--inpod-session", action="store_true",
                   help="build an in-pod lab, connect through it, and record its outputs and the stand-ins' logs")
    p.add_argument("--hbone-session", action="store_true",
                   help="build two two-node labs (one per behaviour), trace and sniff HBONE, and record it all")
    p.add_argument("--capture", default=DEFAULT_CAPTURE)
    p.add_argument("--tunnel", choices=TUNNELS)
    command("features", cmd_features, "probe the kernel features the lab needs", prefix=False)


def handle_errors(func: object, args: argparse.Namespace) -> int:
    """Run a lab command; print a LabError as a message and return 2, and an interrupt (Ctrl-C,
    SIGTERM) as one line, returning 128 + the signal's number (130 for Ctrl-C)."""
    try:
        return int(func(args))  # type: ignore[operator]
    except LabError as err:
        print(f"ambientlab lab: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        undone = " (what it had built is removed)" if isinstance(err, Interrupted) else ""
        print(f"ambientlab lab {args.lab_command}: interrupted by {signal.Signals(signum).name}{undone}",
              file=sys.stderr)
        return 128 + signum

"""The ``ambientlab`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd

from ambientlab import __version__
from ambientlab.cli.lab import add_lab_parser, handle_errors
from ambientlab.core.capture import ManifestError, list_captures, load_capture, rehash
from ambientlab.core.constants import DEMO, INPOD, INPOD_REDIRECT
from ambientlab.core.constants import WORKER as WORKER_CAPTURE
from ambientlab.core.errors import ParseError, decode_text
from ambientlab.core.parse import KINDS, IpsetList, IptablesSave, parse, to_records


def _print_parsed(result: object) -> None:
    with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
        if isinstance(result, IpsetList):
            print(result.sets.dropna(axis=1, how="all").to_string())
            print()
            print(result.members.dropna(axis=1, how="all").to_string())
        elif isinstance(result, IptablesSave):
            print(result.chains.to_string())
            print()
            print(result.rules[["table", "chain", "rule", "text"]].to_string())
        else:
            assert isinstance(result, pd.DataFrame)
            print(result.dropna(axis=1, how="all").to_string())


class InputError(ValueError):
    """A file given on the command line that cannot be read (one line: the file and why)."""


def read_input(path: str) -> str:
    """Return the text of ``path`` (``-``: standard input), decoded as UTF-8; raise
    :class:`InputError` for a directory or an unreadable file and :class:`ParseError`
    (``FILE:LINE: …``) for bytes that are not UTF-8."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror or err}") from None
    return decode_text(data, "<stdin>" if path == "-" else path)


def cmd_parse(args: argparse.Namespace) -> int:
    """Parse one file; print a table, or JSON records with ``--json``."""
    options: dict[str, object] = {}
    if args.excerpt:
        options["excerpt"] = True
    if args.cut:
        options["cut"] = True
    if args.columns:
        options["columns"] = args.columns.split(",")
    text = read_input(args.file)
    try:
        result = parse(args.kind, text, source=args.file, **options)
    except TypeError as err:
        print(f"ambientlab: {err}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(to_records(args.kind, result), sys.stdout, indent=1)
        print()
    else:
        _print_parsed(result)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Check (or, with ``--rehash``, update) the manifests of the captures under data/."""
    names = args.captures or list_captures()
    if args.reconstruct:
        from ambientlab.live.nodes import WORKER
        from ambientlab.live.reconstruct import TUNNEL_FILES, write_reconstruction

        demo = load_capture(DEMO)
        written = write_reconstruction(demo.root)
        from ambientlab.live.kube_proxy import PATH, reconstruct_kube_proxy

        (demo.root / PATH).write_text(reconstruct_kube_proxy())
        print(f"{demo.name}: {len(written) + 1} reconstructed files written (kube-proxy's chains: {PATH})")
        second = load_capture(WORKER_CAPTURE)
        written = write_reconstruction(second.root, WORKER, {p: demo.text(p) for p in TUNNEL_FILES.values()})
        print(f"{second.name}: {len(written)} reconstructed files written")
        from ambientlab.live.reconstruct_inpod import write_inpod

        inpod = load_capture(INPOD)
        print(f"{inpod.name}: {len(write_inpod(inpod.root))} reconstructed files written")
        today = load_capture(INPOD_REDIRECT)
        print(f"{today.name}: {len(write_inpod(today.root, rules='redirect'))} reconstructed files written")
    for name in names:
        capture = load_capture(name)
        if args.rehash:
            changed = rehash(capture)
            print(f"{capture.name}: {len(changed)} hash(es) updated {changed if changed else ''}".rstrip())
            capture = load_capture(name)
        capture.verify()
        for path in capture.files.index:
            capture.parse(path)
        print(f"{capture.name}: {len(capture.files)} files, hashes match, all parse")
    return 0


def cmd_route_get(args: argparse.Namespace) -> int:
    """Answer ``ip route get`` queries from rule, route and address files, as iproute2 prints them."""
    from ambientlab.core.parse.ip_route import render_route
    from ambientlab.core.trace import host_from_texts
    from ambientlab.core.trace.batch import answer, parse_batch, parse_query, public, summary

    def read(path: str | None) -> str | None:
        return read_input(path) if path else None

    forwarding = None if args.forwarding is None else args.forwarding == "on"
    host = host_from_texts("host", read_input(args.rules), read_input(args.routes),
                           read(args.addrs), read(args.sysctl), forwarding=forwarding)
    if args.batch:
        queries = [q for _, q in parse_batch(read_input(args.batch), args.batch)]  # all checked first
    else:
        if not args.query:
            print("ambientlab: route-get needs a destination or --batch FILE", file=sys.stderr)
            return 2
        queries = [parse_query(" ".join(args.query), "command line")]
    status = 0
    for query in queries:
        rec = public(answer(host, query))
        if args.json:
            print(json.dumps(summary(rec)))
        elif "error" in rec and not args.batch:
            print(render_route(rec), file=sys.stderr)
            status = 2
        else:
            print(render_route(rec))
    return status


def cmd_walk(args: argparse.Namespace) -> int:
    """Print the hop table of one of the book's named walks (either design)."""
    from ambientlab.core.trace.walks import WALKS, walk

    if args.scenario not in WALKS:
        print(f"ambientlab: unknown walk {args.scenario!r}; known: {', '.join(WALKS)}", file=sys.stderr)
        return 2
    frame = walk(load_capture(args.capture), args.scenario)
    if args.json:
        json.dump(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"), sys.stdout, indent=1)
        print()
        return 0
    columns = ["host", "hook", "where", "matched", "mark_before", "mark_after", "ctmark", "oif"]
    with pd.option_context("display.max_rows", None, "display.width", 250, "display.max_colwidth", 80):
        for label, group in frame.groupby("packet", sort=False):
            print(f"== {label}: {group['headers'].iloc[0]}")
            print(group[columns].fillna("").to_string(index=False))
            print()
    return 0


def cmd_check_env(args: argparse.Namespace) -> int:
    """Print [ OK ]/[FAIL] lines for what the workshop needs; exit 1 if a required one failed."""
    from ambientlab.live.checkenv import report

    lines, ok = report(lab=not args.no_lab)
    print("\n".join(lines))
    print("ready for the workshop" if ok else "NOT ready: fix the [FAIL] lines above")
    return 0 if ok else 1


def cmd_student(args: argparse.Namespace) -> int:
    """Write the student notebooks (solutions replaced by stubs)."""
    from ambientlab.book.student import write_student

    written = write_student(Path(args.out), lang=args.lang)
    print(f"{args.out}: {len(written)} student notebooks ({args.lang})")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    """Write the workshop zip: student notebooks, data, the package, the quick start."""
    from ambientlab.book.student import write_release, write_student

    student = Path(args.student)
    write_student(student, lang=args.lang)
    target = write_release(Path(args.out), student, lang=args.lang)
    print(f"{target}: {target.stat().st_size // 1024} KiB")
    return 0


def cmd_capture(args: argparse.Namespace) -> int:
    """Record a node of your own cluster (or a live lab) with the book's read-only commands."""
    from ambientlab.live.collect import Runner, Target, design_found, dry_run, lab_target, run_capture

    if args.kind_node:
        target = Target.kind(args.kind_node)
    elif args.kubectl_debug:
        target = Target.debug(args.kubectl_debug, args.image)
    else:
        target = lab_target(args.lab)
    pods = [w for w in (args.pods or "").split(",") if w]
    if args.dry_run:
        print("\n".join(dry_run(target, args.out, with_ztunnel=args.with_ztunnel, pods=pods)))
        return 0
    written = run_capture(target, Path(args.out), Runner(), with_ztunnel=args.with_ztunnel, pods=pods)
    print(f"{args.out}: {len(written)} files and manifest.yaml written (origin: recorded)")
    print(design_found(Path(args.out)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``ambientlab`` command."""
    top = argparse.ArgumentParser(prog="ambientlab", description="Istio ambient redirection, computed.")
    top.add_argument("--version", action="version", version=f"ambientlab {__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    p = sub.add_parser("parse", help="parse one command output into a table or JSON records")
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("file", help="file to parse, or - for standard input")
    p.add_argument("--json", action="store_true", help="print JSON records (iproute2 -j keys)")
    p.add_argument("--excerpt", action="store_true", help="input is a grep excerpt (iptables-save, ip-addr, ip-link)")
    p.add_argument("--cut", action="store_true",
                   help="the file may end without a newline (a pasted excerpt); otherwise that is an error")
    p.add_argument("--columns", help="column names of headerless kubectl output, comma-separated")
    p.set_defaults(func=cmd_parse)
    d = sub.add_parser("data", help="verify the captures in data/ (hashes, listing, parsing)")
    d.add_argument("captures", nargs="*", help="capture names (default: all)")
    d.add_argument("--rehash", action="store_true", help="write current sha256 values into the manifests first")
    d.add_argument("--reconstruct", action="store_true",
                   help="rebuild the demo node, the second node (ambient-worker) and the in-pod node in network "
                        "namespaces (root) and rewrite their reconstructed files")
    d.set_defaults(func=cmd_data)
    r = sub.add_parser("route-get", help="answer ip route get from recorded rules, routes and addresses")
    r.add_argument("--rules", required=True, help="output of `ip rule`")
    r.add_argument("--routes", required=True, help="output of `ip route show table all`")
    r.add_argument("--addrs", help="output of `ip addr` (default: addresses from the local table)")
    r.add_argument("--sysctl", help="output of `sysctl -a` (net.ipv4.*) for forwarding, rp_filter, accept_local")
    r.add_argument("--forwarding", choices=("on", "off"), help="net.ipv4.ip_forward (default: --sysctl, else on)")
    r.add_argument("--batch", help="file with one query per line, `route get DST from SRC iif DEV mark MARK`")
    r.add_argument("--json", action="store_true", help="one JSON object per query: dst, type, dev, gateway, table, prefsrc, error")
    r.add_argument("query", nargs="*", help="DST [from SRC] [iif DEV] [mark MARK]")
    r.set_defaults(func=cmd_route_get)
    w = sub.add_parser("walk", help="print the hop table of a named packet walk on a capture")
    w.add_argument("capture", help="capture name under data/ (or a folder)")
    w.add_argument("scenario", help="walk name, e.g. same-node-vip (2022 captures) or inpod-outbound (in-pod captures)")
    w.add_argument("--json", action="store_true", help="print the hops as JSON records")
    w.set_defaults(func=cmd_walk)
    c = sub.add_parser("check-env", help="is this machine ready for the workshop? [ OK ]/[FAIL] lines")
    c.add_argument("--no-lab", action="store_true", help="skip root, the tools and the kernel features of the live lab")
    c.set_defaults(func=cmd_check_env)
    s = sub.add_parser("student", help="write the student notebooks (solutions replaced by stubs)")
    s.add_argument("out", help="folder to write into, e.g. _build/student")
    s.add_argument("--lang", choices=["en", "zh"], default="en", help="the language of the prose (zh: the Chinese edition's)")
    s.set_defaults(func=cmd_student)
    z = sub.add_parser("release", help="write the workshop zip (student notebooks, data, package, quick start)")
    z.add_argument("out", help="folder for the zip, e.g. _build/release")
    z.add_argument("--student", default="_build/student", help="where the student notebooks are written first")
    z.add_argument("--lang", choices=["en", "zh"], default="en", help="the language of the student notebooks' prose")
    z.set_defaults(func=cmd_release)
    k = sub.add_parser("capture", help="record a node of your cluster with the book's read-only commands",
                       description="Record a node with the book's read-only commands, one exec each; the outputs "
                                   "stream back and nothing is written on the node. --kind-node and --lab create "
                                   "nothing. --kubectl-debug is the one mode that CREATES something: a privileged pod "
                                   "ambientlab-capture-NODE in namespace default, deleted at the end (also when the "
                                   "capture fails). --dry-run prints every command in order, that pod's creation "
                                   "and deletion included. A capture that fails leaves no folder.")
    k.add_argument("out", help="the capture folder to write (e.g. data/my-node); AMBIENTLAB_CAPTURE=its name")
    how = k.add_mutually_exclusive_group(required=True)
    how.add_argument("--kind-node", help="a kind node: run the commands with `docker exec NODE` (creates nothing)")
    how.add_argument("--kubectl-debug", metavar="NODE",
                     help="any node: CREATES the pod ambientlab-capture-NODE (namespace default, privileged, the "
                          "node's network, its root at /host), runs each command with `kubectl exec … chroot /host`, "
                          "and deletes the pod at the end")
    how.add_argument("--lab", metavar="PREFIX",
                     help="a running live lab's node (root), read like a real one; needs no cluster (creates nothing)")
    k.add_argument("--with-ztunnel", action="store_true",
                   help="also read the ztunnel pod's namespace (the 2022 design; kubectl exec, needs ip in its image)")
    k.add_argument("--pods", help="in-pod design: read these pods' own namespaces too (comma-separated names)")
    k.add_argument("--image", default="busybox:1.36", help="the debug pod's image (--kubectl-debug)")
    k.add_argument("--dry-run", action="store_true",
                   help="print every command the capture would run, in order (look-ups, version probes, the debug "
                        "pod's creation and deletion); run nothing")
    k.set_defaults(func=cmd_capture)
    add_lab_parser(sub)
    return top


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "lab":
            return handle_errors(args.func, args)
        return int(args.func(args))
    except ParseError as err:
        print(f"ambientlab: {err}", file=sys.stderr)
        return 2
    except (ManifestError, FileNotFoundError, FileExistsError, KeyError, ValueError, RuntimeError) as err:
        print(f"ambientlab: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status: 2 for bad input, 141 (as if killed by
    SIGPIPE, without a traceback) when the reader of our output went away, as ``| head`` does."""
    try:
        status = _run(argv)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # Python would print a traceback, then another when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + 13


if __name__ == "__main__":
    sys.exit(main())

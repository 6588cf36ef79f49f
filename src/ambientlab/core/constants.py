"""The facts that several layers share, in one place: the book's captures, the ports of the
redirection, and the socket marks of ztunnel's behaviours. Standard library only (the lab's
stand-ins import it inside every namespace)."""

from __future__ import annotations

# The captures under data/ that code refers to by name.
DEMO = "kind-2022-ambient-worker2"  # the book's node: Sept 2022, node-level redirection
WORKER = "kind-2022-ambient-worker"  # the demo cluster's other node (second node of a two-node lab)
KEBE = "kind-2022-kebe"  # the second 2022 cluster
INPOD = "inpod-1.22-ambient-worker2"  # Istio 1.22's in-pod rules
INPOD_REDIRECT = "inpod-redirect-ambient-worker2"  # today's in-pod rules (REDIRECT, Istio 1.24 and later)
LAB = "lab-2026-11-ambient-worker2"  # the live lab's recording (chapter 13)
HBONE = "lab-2026-11-hbone"  # the two-node lab's HBONE recording (chapter 14)
LAB_INPOD = "lab-2026-11-inpod"  # the in-pod lab's recording (chapter 15)

APP_PORT = 9080  # the demo's services (reviews, productpage)
HBONE_PORT = 15008  # ztunnel's inbound HBONE port

# ztunnel's listeners, and the socket marks of each behaviour of the lab's stand-in.
LISTENERS = {15001: "outbound", 15006: "inbound plaintext", 15008: "inbound (HBONE port)"}
BEHAVIOURS = {
    "no-marks": {"listeners": {15001: 0, 15006: 0, 15008: 0}, "onward": 0},
    "marks-2022": {"listeners": {15001: 0x401, 15006: 0x402, 15008: 0x402}, "onward": 0x4D2},
}
# In-pod (Istio 1.21+): ztunnel's sockets live in the app pod's namespace, all marked 0x539; 15001
# receives REDIRECTed connections (the original destination comes from conntrack) and dials on from
# the pod's own address; 15006/15008 receive TPROXYed ones and dial the app with the peer's address.
INPOD_MARKS = {"listeners": {15001: 0x539, 15006: 0x539, 15008: 0x539}, "onward": 0x539}
# The kube-proxy walks `lab trace --walk` plays in a lab built with --kube-proxy (ambientlab.live.lab.nftrace)
KUBE_PROXY_LAB_WALKS = ("service-outside-mesh-remote", "service-outside-mesh-local")
# The in-pod walks it plays in an in-pod lab, one per version of the rules (`lab up --design inpod --rules`)
INPOD_LAB_WALKS = ("inpod-outbound", "redirect-outbound")

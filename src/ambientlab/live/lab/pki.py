"""The lab's certificate authority and the workloads' certificates, as Istio issues them:
one X.509 certificate per service account, its only name a SPIFFE ID in the URI subject
alternative name (``spiffe://cluster.local/ns/default/sa/bookinfo-reviews``).

Made with ``cryptography`` at ``lab up``: ECDSA P-256 keys, a self-signed root valid for a
day, leaf certificates signed by it. Nothing here is secret beyond the lab's life.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "cluster.local"
NAMESPACE = "default"


def spiffe_id(service_account: str, namespace: str = NAMESPACE, trust_domain: str = TRUST_DOMAIN) -> str:
    """Return the SPIFFE ID Istio gives a workload running as ``service_account``."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def service_account(pod: str) -> str:
    """Return the service account of a Bookinfo pod (lab host name such as ``reviews-v1`` or
    ``worker-reviews-v1``): Bookinfo runs each app as ``bookinfo-APP``."""
    app = pod.removeprefix("worker-").rsplit("-v", 1)[0]
    return f"bookinfo-{app}"


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))


def make_ca(organization: str = TRUST_DOMAIN) -> tuple[Issued, ec.EllipticCurvePrivateKey]:
    """Return a self-signed root (PEM cert and key) and its private key object."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    builder = _validity(x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                        .serial_number(x509.random_serial_number()))
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
        x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                      key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                      decipher_only=False), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)), key


def issue(ca: Issued, ca_key: ec.EllipticCurvePrivateKey, identity: str) -> Issued:
    """Return a workload certificate for SPIFFE ID ``identity`` signed by ``ca``: no subject,
    the URI SAN only, usable as TLS server and client (as Istio's workload certificates are)."""
    issuer = x509.load_pem_x509_certificate(ca.cert)
    key = _key()
    builder = _validity(x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(issuer.subject)
                        .public_key(key.public_key()).serial_number(x509.random_serial_number()))
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
                                    critical=True)
    builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                           ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def identity_of(cert_pem: bytes) -> str:
    """Return the SPIFFE ID (the URI SAN) of a PEM certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    return uris[0]


def describe(cert_pem: bytes) -> dict[str, object]:
    """Return what a reader checks in a PEM certificate: subject, issuer, SPIFFE IDs (URI SANs),
    whether it is a CA, key usages, key type, signature, validity in days, serial; and the PEM."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    try:
        usages = [u._name for u in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value]
    except x509.ExtensionNotFound:
        usages = []
    key = cert.public_key()
    return {
        "subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(), "uri_sans": uris,
        "ca": cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca,
        "extended_key_usage": usages,
        "key": f"EC {key.curve.name}" if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__,
        "signature": cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else None,
        "valid_days": (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 86400,
        "serial_bits": cert.serial_number.bit_length(), "pem": cert_pem.decode(),
    }


def write_pki(folder: Path, accounts: list[str]) -> dict[str, str]:
    """Create a CA in ``folder`` (``ca.pem``; its key is not kept) and one certificate per
    service account (``SA.pem``, ``SA.key``); return {service account: SPIFFE ID}."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = make_ca()
    (folder / "ca.pem").write_bytes(ca.cert)
    out = {}
    for account in sorted(set(accounts)):
        identity = spiffe_id(account)
        leaf = issue(ca, ca_key, identity)
        (folder / f"{account}.pem").write_bytes(leaf.cert)
        key_path = folder / f"{account}.key"
        key_path.write_bytes(leaf.key)
        key_path.chmod(0o600)
        out[account] = identity
    return out

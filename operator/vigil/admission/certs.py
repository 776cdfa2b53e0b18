"""The webhook's own CA and serving certificate, made and kept by Vigil.

The apiserver calls the webhook over TLS and trusts it through the `caBundle` of the
ValidatingWebhookConfiguration. `ensure()` reuses the files in the directory while they are
valid for the requested names and not about to expire, and otherwise makes a new CA and
serving certificate. Key files are created owner-only (0600) from the start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vigil.files import write_private

VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class WebhookCerts:
    ca_cert: Path
    cert: Path
    key: Path

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


def _paths(directory: Path) -> WebhookCerts:
    return WebhookCerts(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _still_good(certs: WebhookCerts, hosts: Sequence[str], now: dt.datetime) -> bool:
    try:
        ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
        cert = x509.load_pem_x509_certificate(certs.cert.read_bytes())
        serialization.load_pem_private_key(certs.key.read_bytes(), password=None)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    present = set(names.get_values_for_type(x509.DNSName)) | {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    ends = min(ca.not_valid_after_utc, cert.not_valid_after_utc)
    return set(hosts) <= present and ends - now > RENEW_BEFORE


def ensure(directory: Path, hosts: Sequence[str], now: dt.datetime | None = None) -> WebhookCerts:
    """Certificates for `hosts` (DNS names or IPs) in `directory`: the existing ones when still
    good, else a new CA and a serving certificate signed by it."""
    now = now or dt.datetime.now(dt.UTC)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    certs = _paths(directory)
    if _still_good(certs, hosts, now):
        return certs
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vigil-webhook-ca")])
    start, end = now - dt.timedelta(minutes=5), now + VALIDITY
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_private(certs.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    certs.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return certs

"""Self-signed certificates for a server without one from a certificate authority.

"Host a chat" calls ``ensure_self_signed`` on first use and keeps the pair in the user data
folder (the key readable by its owner only); clients trust it on first use and pin its
SHA-256 fingerprint (``gui/net/trust.py``), which the host shows so people can compare it.
The ``cryptography`` package makes the key and certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.tls import fingerprint

log = logging.getLogger(__name__)

CERT_FILE = "tls-cert.pem"
KEY_FILE = "tls-key.pem"
VALID_DAYS = 3650  # pinned by fingerprint, so a renewal would look like an attack


@dataclass(frozen=True, slots=True)
class CertificatePair:
    cert: Path
    key: Path
    fingerprint: str


def file_fingerprint(cert: Path) -> str:
    """SHA-256 fingerprint of the first certificate in a PEM file."""
    return fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text(encoding="ascii")))


def make_self_signed(cert: Path, key: Path, names: list[str]) -> CertificatePair:
    """Write a new self-signed certificate for ``names`` (host names or IP addresses) and its
    key (mode 0600, written before the certificate so a crash never leaves a cert without it)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "tkchat")])
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    certificate = builder.sign(private_key, hashes.SHA256())
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key, key_pem)
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    der = certificate.public_bytes(serialization.Encoding.DER)
    return CertificatePair(cert, key, fingerprint(der))


def ensure_self_signed(directory: Path) -> CertificatePair:
    """The certificate in ``directory``, made there on first use (or if half of it is gone)."""
    cert, key = directory / CERT_FILE, directory / KEY_FILE
    if cert.is_file() and key.is_file():
        try:
            return CertificatePair(cert, key, file_fingerprint(cert))
        except (OSError, ValueError) as exc:
            log.warning("cannot read %s (%s); making a new certificate", cert, exc)
    names = _local_names()
    log.info("making a self-signed TLS certificate in %s for %s", directory, ", ".join(names))
    return make_self_signed(cert, key, names)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(tmp, 0o600)  # in case the file already existed with other bits
    os.replace(tmp, path)


def _local_names() -> list[str]:
    """The names this machine is likely reached by (only informative: clients pin the
    fingerprint, they do not check names against a self-signed certificate)."""
    names = [socket.gethostname() or "tkchat", "localhost", "127.0.0.1"]
    return list(dict.fromkeys(n for n in names if n))

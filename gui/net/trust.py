"""Which TLS servers the clients trust, and the TLS connect itself.  No Tk in here.

The rules (PROTOCOL.md, TLS), as SSH and browsers taught people to expect:
- A certificate signed by an authority the system trusts (or the ``ca_file`` given) is checked
  as usual: chain and host name.  A wrong host name or an unknown authority is refused.
- A self-signed certificate (what "Host a chat" makes) cannot be checked that way, so it is
  trusted on first use: its SHA-256 fingerprint is pinned for that host and port in a
  known-hosts file in the config dir, and shown so the person can compare it with the one the
  host sees.  Later connections must present the same certificate; a different one is refused
  with a warning that says what it may mean and how to accept it deliberately.

The known-hosts file is text, one ``HOST:PORT FINGERPRINT`` per line (IPv6 hosts in brackets),
so a person can read it and delete a line.  A first self-signed connection costs two
handshakes: the first, with full verification, is what shows the certificate is self-signed.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.tls import fingerprint

log = logging.getLogger(__name__)

KNOWN_HOSTS_FILE = "known_hosts"
_SELF_SIGNED = 18  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH


class TrustError(ConnectionError):
    """TLS refused the server; the text is for a person (see ``changed``)."""

    def __init__(self, text: str, *, changed: bool = False) -> None:
        super().__init__(text)
        self.changed = changed  # True: the pinned fingerprint no longer matches


def host_key(host: str, port: int) -> str:
    host = host.strip().lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KnownHosts:
    """Pinned fingerprints of self-signed servers, kept in one text file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        pins: dict[str, str] = {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return pins
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read %s: %s", self.path, exc)
            return pins
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                pins[parts[0].lower()] = parts[1].upper()
        return pins

    def get(self, host: str, port: int) -> str | None:
        return self._read().get(host_key(host, port))

    def remember(self, host: str, port: int, print_: str) -> None:
        pins = self._read()
        pins[host_key(host, port)] = print_
        self._write(pins)

    def forget(self, host: str, port: int) -> bool:
        pins = self._read()
        if pins.pop(host_key(host, port), None) is None:
            return False
        self._write(pins)
        return True

    def _write(self, pins: dict[str, str]) -> None:
        """Atomically (temp file + rename): a crash never loses the other pins."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# TkChat: self-signed servers trusted on first use (HOST:PORT SHA-256)"]
        lines += [f"{key} {value}" for key, value in sorted(pins.items())]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """How a client checks TLS servers.  ``known_hosts`` None: CA-signed certificates only."""

    known_hosts: KnownHosts | None
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class TLSPeer:
    """What was checked about the server: ``trust`` is ``"ca"`` (verified by an authority),
    ``"pinned"`` (the self-signed certificate seen before) or ``"first use"`` (pinned now)."""

    fingerprint: str
    trust: str
    version: str

    def describe(self) -> str:
        if self.trust == "ca":
            return f"Encrypted ({self.version}); the certificate is signed by a trusted authority."
        if self.trust == "pinned":
            return (
                f"Encrypted ({self.version}); the server's self-signed certificate is the one "
                f"trusted for it (SHA-256 {self.fingerprint})."
            )
        return (
            f"Encrypted ({self.version}). First connection to this server: its self-signed "
            f"certificate is now trusted. Check with the server's owner that its SHA-256 "
            f"fingerprint is {self.fingerprint}"
        )


def verified_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _pinning_context() -> ssl.SSLContext:
    """No chain check: the fingerprint comparison after the handshake is the check."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def establish(
    sock: socket.socket,
    reopen: Callable[[], socket.socket],
    host: str,
    port: int,
    *,
    options: TLSOptions,
    timeout: float,
) -> tuple[ssl.SSLSocket, TLSPeer]:
    """TLS over the connected ``sock`` (``reopen`` makes a new connection when a second
    handshake is needed); returns the TLS socket and what was verified.
    Raises ``TrustError`` (a ``ConnectionError``) with the reason for a person."""
    where = f"{host}:{port}"
    known = options.known_hosts
    pin = known.get(host, port) if known is not None else None
    if pin is None:
        try:
            context = verified_context(options.ca_file)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise TrustError(f"cannot use the CA file {options.ca_file}: {exc}") from exc
        try:
            tls = _handshake(sock, context, host, where, timeout)
            return tls, _peer(tls, "ca")
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            if exc.verify_code != _SELF_SIGNED or known is None:
                raise TrustError(_unverified_text(where, exc)) from exc
        sock = reopen()
    tls = _handshake(sock, _pinning_context(), host, where, timeout)
    peer = _peer(tls, "pinned" if pin is not None else "first use")
    assert known is not None
    if pin is None:
        known.remember(host, port, peer.fingerprint)
        log.info("%s: self-signed certificate %s pinned in %s", where, peer.fingerprint, known.path)
    elif pin != peer.fingerprint:
        tls.close()
        raise TrustError(_changed_text(host, port, pin, peer.fingerprint, known.path), changed=True)
    return tls, peer


def _handshake(
    sock: socket.socket, context: ssl.SSLContext, host: str, where: str, timeout: float
) -> ssl.SSLSocket:
    """The handshake, blocking for at most ``timeout`` (the socket is closed if it fails)."""
    sock.settimeout(timeout)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError:
        raise
    except ssl.SSLError as exc:
        problem = f"TLS with {where} failed ({exc.reason or exc})"
    except TimeoutError:
        problem = f"no TLS answer from {where} within {timeout:g} s"
    except OSError as exc:
        problem = f"the connection to {where} broke during the TLS handshake ({exc})"
    finally:
        sock.close()  # the TLS socket owns the connection now (or it failed)
    raise TrustError(
        f"{problem}. Is it a TLS server (and not full)? Connect without TLS if it is a "
        "plaintext one."
    )


def _peer(tls: ssl.SSLSocket, trust: str) -> TLSPeer:
    der = tls.getpeercert(binary_form=True)
    return TLSPeer(fingerprint(der) if der else "", trust, tls.version() or "")


def _unverified_text(where: str, exc: ssl.SSLCertVerificationError) -> str:
    if exc.verify_code == _HOSTNAME_MISMATCH:
        return (
            f"Refused: the certificate of {where} is not for that name "
            f"({exc.verify_message}). Use the name the certificate was made for."
        )
    return (
        f"Refused: the certificate of {where} cannot be verified ({exc.verify_message}). "
        "If the server uses its own certificate authority, give that authority's certificate "
        "as the CA file."
    )


def _changed_text(host: str, port: int, pinned: str, now: str, path: Path) -> str:
    return (
        f"WARNING: THE CERTIFICATE OF {host}:{port} HAS CHANGED. TkChat did not connect.\n"
        f"Trusted before: {pinned}\nPresented now:  {now}\n"
        "Someone may be intercepting the connection (a man-in-the-middle attack), or the "
        "server's owner made a new certificate. Ask the owner for the fingerprint their "
        f"server shows; only if it matches, delete the line for {host_key(host, port)} "
        f"from {path} and connect again."
    )

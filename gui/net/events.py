"""Values the network core hands to its user, besides the parsed server ``Response``s."""

from __future__ import annotations

from dataclasses import dataclass

from common.protocol import Response
from gui.net.trust import TLSPeer


@dataclass(frozen=True, slots=True)
class Connected:
    host: str
    port: int
    tls: TLSPeer | None = None  # what TLS checked (None: plaintext)


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """The connection never came up; ``reason`` is for a person.  ``final``: retrying
    cannot help (TLS refused the server's certificate)."""

    reason: str
    final: bool = False


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection is gone.  ``expected`` is True when we closed it (disconnect, logout)."""

    reason: str
    expected: bool = False


ClientEvent = Response | Connected | ConnectFailed | Disconnected

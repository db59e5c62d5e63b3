"""Values the network core hands to its user, besides the parsed server ``Response``s."""

from __future__ import annotations

from dataclasses import dataclass

from common.protocol import Response


@dataclass(frozen=True, slots=True)
class Connected:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """The connection never came up; ``reason`` is for a person."""

    reason: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection is gone.  ``expected`` is True when we closed it (disconnect, logout)."""

    reason: str
    expected: bool = False


ClientEvent = Response | Connected | ConnectFailed | Disconnected

"""The TkChat wire protocol, pure: no sockets, no threads, no Tk.

Everything that turns bytes into typed values and back lives here, so that the server, the
network client, the Tk app and the tests share one implementation of ``PROTOCOL.md``.
"""

from common.decoder import DecodeError, StreamDecoder
from common.message import Message
from common.protocol import (
    ErrorResponse,
    HistoryResponse,
    InfoResponse,
    MessageParser,
    MessageResponse,
    Response,
    ResponseType,
)

__all__ = [
    "DecodeError",
    "ErrorResponse",
    "HistoryResponse",
    "InfoResponse",
    "Message",
    "MessageParser",
    "MessageResponse",
    "Response",
    "ResponseType",
    "StreamDecoder",
]

"""``StreamDecoder``: bytes from a TCP stream in, whole JSON objects (or errors) out.

Feed it whatever ``recv`` returned; it gives back every complete object so far.  It copes with
objects split across reads or packed into one read, with or without newlines between them (KTN
programs send bare ``json.dumps`` output), and with UTF-8 characters split between reads.

Framing is found by a small scanner rather than by retrying ``json.loads`` on the growing
buffer: retrying would cost O(n^2) for an object sent one byte at a time, which a hostile client
can use to burn the server's CPU.  The scanner keeps its place between feeds, so each byte is
looked at a bounded number of times.

Errors (PROTOCOL.md, Transport):
- malformed JSON, invalid UTF-8, a value that is not an object: a ``DecodeError`` with code
  ``bad_request``; the bad bytes are skipped up to the next newline and decoding goes on, so one
  bad line gets exactly one error.  A raw newline can never be inside a valid request (JSON
  escapes it in strings), so an object that is still open at a newline is cut off there as
  malformed: a truncated request never swallows the requests after it.
- ``resync_at_newline=False`` (the client's choice) skips only the bad bytes themselves, up to
  the next ``{``: a KTN server that sends bare objects and never a newline would otherwise lose
  everything after one bad object.  It also reads a raw newline between the tokens of an object
  as the whitespace it is in JSON, so a server that pretty-prints its objects is understood.
- more than ``max_bytes`` buffered without a complete object: a fatal ``DecodeError`` with code
  ``too_large``; the caller answers and closes the connection.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from common.protocol import MAX_OBJECT_BYTES, ErrorCode

# Outside strings only these bytes matter to framing; inside strings only these.
_OUTSIDE = re.compile(rb'[{}"\n]')
_INSIDE = re.compile(rb'["\\\n]')
_WHITESPACE = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class DecodeError:
    """A framing or syntax problem in the stream; ``fatal`` means the stream cannot go on."""

    code: str
    text: str
    fatal: bool = False


Decoded = dict[str, Any] | DecodeError


class StreamDecoder:
    """Incremental JSON-object framer for one direction of one connection."""

    def __init__(
        self, max_bytes: int = MAX_OBJECT_BYTES, *, resync_at_newline: bool = True
    ) -> None:
        self.max_bytes = max_bytes
        self.resync_at_newline = resync_at_newline
        self._buf = bytearray()
        self._scan = 0  # how far into _buf the current object has been scanned
        self._depth = 0
        self._in_string = False
        self._skipping = False  # discarding garbage up to the next newline
        self._dead = False

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete object."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Decoded]:
        """Add bytes from the stream; return every object (or error) they complete, in order."""
        if self._dead:
            return []
        if not self._buf and not self._skipping:
            whole = _one_object(data, self.max_bytes)
            if whole is not None:
                return [whole]
        self._buf += data
        out: list[Decoded] = []
        start = 0  # start of the not-yet-consumed part of _buf
        buf = self._buf
        while True:
            if self._skipping:
                newline = buf.find(b"\n", start)
                if newline < 0:
                    start = len(buf)
                    break
                start = newline + 1
                self._skipping = False
            if self._depth == 0:
                # Between objects: skip whitespace, then expect "{".
                while start < len(buf) and buf[start] in _WHITESPACE:
                    start += 1
                if start >= len(buf):
                    break
                if buf[start] != ord("{"):
                    out.append(DecodeError(ErrorCode.BAD_REQUEST, _NOT_AN_OBJECT))
                    if self.resync_at_newline:
                        self._skipping = True
                    else:
                        brace = buf.find(b"{", start)
                        start = len(buf) if brace < 0 else brace
                    continue
                self._depth = 1
                self._in_string = False
                self._scan = start + 1
            end = self._scan_object(buf)
            if end is None:
                if len(buf) - start > self.max_bytes:
                    out.append(DecodeError(ErrorCode.TOO_LARGE, _TOO_LARGE, fatal=True))
                    self._dead = True
                    buf.clear()
                    return out
                break
            if end < 0:  # cut off by a raw newline at -end - 1
                out.append(DecodeError(ErrorCode.BAD_REQUEST, _MALFORMED))
                start = -end
                continue
            decoded = _load(bytes(buf[start:end]), self.max_bytes)
            start = end
            out.append(decoded)
            if isinstance(decoded, DecodeError):
                if decoded.fatal:
                    self._dead = True
                    buf.clear()
                    return out
                # The rest of a bad line is part of the same bad request: one error for it.
                self._skipping = self.resync_at_newline
        del buf[:start]
        self._scan -= start
        return out

    def _scan_object(self, buf: bytearray) -> int | None:
        """Advance the scanner; the end offset of a finished object, ``-(newline+1)`` for an
        object cut off by a raw newline, or ``None`` when more bytes are needed."""
        pos = self._scan
        depth = self._depth
        in_string = self._in_string
        n = len(buf)
        while pos < n:
            if in_string:
                match = _INSIDE.search(buf, pos)
                if match is None:
                    pos = n
                    break
                pos = match.start()
                char = buf[pos]
                if char == 0x5C:  # backslash: skip the escaped byte (it may not be here yet)
                    if pos + 1 >= n:
                        break
                    if buf[pos + 1] == 0x0A:
                        return self._cut(pos + 1)
                    pos += 2
                    continue
                if char == 0x0A:
                    return self._cut(pos)
                in_string = False
                pos += 1
                continue
            match = _OUTSIDE.search(buf, pos)
            if match is None:
                pos = n
                break
            pos = match.start()
            char = buf[pos]
            pos += 1
            if char == 0x22:
                in_string = True
            elif char == 0x7B:
                depth += 1
            elif char == 0x7D:
                depth -= 1
                if depth == 0:
                    self._depth = 0
                    self._in_string = False
                    self._scan = pos
                    return pos
            elif self.resync_at_newline:  # raw newline outside a string, inside an object
                return self._cut(pos - 1)
            # else: JSON whitespace, as in a pretty-printed (json.dumps(indent=...)) object
        self._scan = pos
        self._depth = depth
        self._in_string = in_string
        return None

    def _cut(self, newline: int) -> int:
        self._depth = 0
        self._in_string = False
        self._scan = newline + 1
        return -(newline + 1)


_NOT_AN_OBJECT = "bad request: expected a JSON object"
_MALFORMED = "bad request: malformed JSON"
_TOO_LARGE = f"request too large: more than {MAX_OBJECT_BYTES} bytes without a complete object"


_DECODER = json.JSONDecoder()


def _one_object(data: bytes, max_bytes: int) -> dict[str, Any] | None:
    """The common case, fast: ``data`` is exactly one valid object on one line (optionally
    followed by whitespace), as a client sends one request per write.  ``None`` for anything
    else, which the scanner then reads; it would find this same object, since a valid object
    without a raw newline in it ends where its braces close."""
    frame = data.rstrip(_WHITESPACE)
    if frame[:1] != b"{" or frame[-1:] != b"}" or len(frame) > max_bytes or b"\n" in frame:
        return None
    try:
        value, end = _DECODER.raw_decode(frame.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if end != len(frame) or not isinstance(value, dict):
        return None
    return value


def _load(frame: bytes, max_bytes: int) -> Decoded:
    if len(frame) > max_bytes:
        return DecodeError(ErrorCode.TOO_LARGE, _TOO_LARGE, fatal=True)
    try:
        text = frame.decode("utf-8")
    except UnicodeDecodeError:
        return DecodeError(ErrorCode.BAD_REQUEST, "bad request: invalid UTF-8")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return DecodeError(ErrorCode.BAD_REQUEST, _MALFORMED)
    if not isinstance(value, dict):  # pragma: no cover - a "{...}" frame always loads as dict
        return DecodeError(ErrorCode.BAD_REQUEST, _NOT_AN_OBJECT)
    return value

"""--ws-engine buffered: RFC 6455 frames of our own over a plain socket, read through a buffer.

The handshake is the `websockets` package's, as with --ws-engine websockets: its sans-I/O
protocol builds the upgrade request and checks the response. From then on the frames are
ours, because the bench showed the package's parser, a generator per frame, costing as much
per message as websocket-client at the rates a load test runs (one frame per read):
- one socket read of up to READ_SIZE bytes is parsed at once; header fields are read by
  index from the buffer and each payload is sliced out, with no object per frame;
- what we send is masked by the package's C apply_mask, with keys cut from os.urandom
  drawn in batches (unpredictable, as RFC 6455 section 5.3 asks, without a system call per
  frame);
- a server's ping is answered with its payload; a server's close is answered with its code
  and ends the socket with that code; a protocol error (a masked or reserved-bit frame, an
  unknown opcode, a control frame that is fragmented or long, a continuation out of place,
  text that is not UTF-8) is answered with a close 1002 or 1007 and ends the socket as 1006,
  as the two library engines end it.
"""

import os
import socket
import struct
import threading
import time

from websockets.client import ClientProtocol
from websockets.frames import apply_mask
from websockets.http11 import Response

from load.config.handshake import Handshake
from load.wire import errors
from load.wire.engines import BINARY, CLOSE, TEXT, ConnectFailed, SendFailed
from load.wire.engines.sansio import (
    check_response,
    end_stream,
    hung_up,
    open_stream,
    read_some,
    send_upgrade,
    shut_both_ways,
    upgraded,
)

READ_SIZE = 65536
HEAD_LIMIT = 65536  # an upgrade response longer than this is no websocket server's
CONT, TEXT_OP, BINARY_OP, CLOSE_OP, PING_OP, PONG_OP = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_KINDS = {TEXT_OP: TEXT, BINARY_OP: BINARY}
PROTOCOL_ERROR, INVALID_DATA, NORMAL = 1002, 1007, 1000


class _Masks:
    """Masking keys from os.urandom, 1,024 at a time."""

    def __init__(self) -> None:
        self.pool, self.at = b"", 0

    def take(self) -> bytes:
        if self.at >= len(self.pool):
            self.pool, self.at = os.urandom(4096), 0
        self.at += 4
        return self.pool[self.at - 4 : self.at]


_masks = _Masks()  # one process, one gevent thread: no two greenlets draw at once


def frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: final, masked, with a 7-, 16- or 64-bit length."""
    n, mask = len(payload), _masks.take()
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    return head + mask + apply_mask(payload, mask)


def connect(url: str, timeout: float, handshake: Handshake | None) -> "BufferedSocket":
    sock, protocol, deadline = open_stream(url, timeout, handshake)
    rest = upgraded(sock, lambda: _handshake(sock, protocol, handshake, deadline))
    return BufferedSocket(sock, rest)


def _handshake(
    sock: socket.socket, protocol: ClientProtocol, handshake: Handshake | None, deadline: float
) -> bytes:
    """Send the upgrade and check the response; the bytes after it are frames already sent."""
    send_upgrade(sock, protocol, handshake)
    head, rest = _read_head(sock, deadline)
    status = _status(head)
    if status is not None and status != 101:  # refused: its body, if any, stays unread
        raise ConnectFailed(errors.rejected_with_status(status), status)
    protocol.receive_data(head)
    if not any(isinstance(event, Response) for event in protocol.events_received()):
        protocol.receive_eof()  # the head alone makes a 101 response: this one was malformed
    check_response(protocol, handshake)
    return rest


def _status(head: bytes) -> int | None:
    """The status code of an HTTP/1.1 status line; None if it is not one (the protocol says why)."""
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) >= 2 and parts[0] == b"HTTP/1.1" and parts[1].isdigit() and len(parts[1]) == 3:
        return int(parts[1])
    return None


def _read_head(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    """The response's status line and headers, and the bytes after them (frames the server
    sent at once, e.g. a welcome)."""
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        if len(data) > HEAD_LIMIT:
            raise ConnectFailed(errors.classify_connect_error(ConnectionResetError()))
        chunk = read_some(sock, deadline)
        if not chunk:
            raise hung_up()
        data += chunk
    return data[: end + 4], data[end + 4 :]


class BufferedSocket:
    __slots__ = ("sock", "buf", "pos", "fragments", "fragmented_kind", "ended", "code", "close_sent", "lock")

    def __init__(self, sock: socket.socket, rest: bytes):
        self.sock = sock
        self.buf = bytearray(rest)  # read, not yet parsed from `pos` on
        self.pos = 0
        self.fragments: list[bytes] | None = None  # a fragmented message so far
        self.fragmented_kind = TEXT
        self.ended = False  # no more messages: recv() gives (CLOSE, code)
        self.code = errors.NO_CLOSE_FRAME
        self.close_sent = False
        # The reader (answering pings and closes) and the sender write from two greenlets.
        self.lock = threading.Lock()

    def recv(self) -> tuple[str, object]:
        while not self.ended:
            message = self._parse()
            if message is not None:
                return message
            if not self.ended:
                self._read()
        return CLOSE, self.code

    def _read(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except OSError:
            data = b""
        if not data:
            self.ended = True
            return
        if self.pos:
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += data

    def _parse(self) -> tuple[str, bytes] | None:
        """The next whole message in the buffer, answering control frames on the way; None
        when the buffer holds no more (or the socket ended)."""
        buf = self.buf
        while not self.ended:
            pos, size = self.pos, len(buf)
            if size - pos < 2:
                return None
            first, second = buf[pos], buf[pos + 1]
            length, start = second & 0x7F, pos + 2
            if length == 126:
                if size - pos < 4:
                    return None
                length, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if size - pos < 10:
                    return None
                length, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            end = start + length
            if size < end:
                return None
            if second & 0x80 or first & 0x70:  # masked by the server, or reserved bits set
                self._fail(PROTOCOL_ERROR)
                return None
            self.pos = end
            message = self._frame(first & 0x0F, first & 0x80, bytes(buf[start:end]))
            if message is not None:
                return message
        return None

    def _frame(self, opcode: int, fin: int, payload: bytes) -> tuple[str, bytes] | None:
        if opcode >= CLOSE_OP:
            self._control(opcode, fin, payload)
            return None
        if opcode == CONT:
            if self.fragments is None:
                self._fail(PROTOCOL_ERROR)
                return None
            self.fragments.append(payload)
            if not fin:
                return None
            kind, payload, self.fragments = self.fragmented_kind, b"".join(self.fragments), None
        else:
            started = _KINDS.get(opcode)
            if started is None or self.fragments is not None:
                self._fail(PROTOCOL_ERROR)
                return None
            if not fin:
                self.fragmented_kind, self.fragments = started, [payload]
                return None
            kind = started
        if kind == TEXT:
            try:
                payload.decode()
            except UnicodeDecodeError:
                self._fail(INVALID_DATA)
                return None
        return kind, payload

    def _control(self, opcode: int, fin: int, payload: bytes) -> None:
        if not fin or len(payload) > 125 or opcode > PONG_OP:
            self._fail(PROTOCOL_ERROR)
            return
        if opcode == PING_OP:
            self._write_quietly(frame(PONG_OP, payload))
        elif opcode == CLOSE_OP:
            if len(payload) == 1:
                self._fail(PROTOCOL_ERROR)
                return
            self.code = int.from_bytes(payload[:2], "big") if payload else 1005
            self.ended = True
            self._answer_close(payload[:2])

    def _fail(self, code: int) -> None:
        """A protocol error: our close with its code; the socket ends without the server's."""
        self.ended, self.code = True, errors.NO_CLOSE_FRAME
        self._answer_close(code.to_bytes(2, "big"))

    def _answer_close(self, code: bytes) -> None:
        if not self.close_sent:
            self.close_sent = True
            self._write_quietly(frame(CLOSE_OP, code))

    def _write_quietly(self, data: bytes) -> None:
        """An answer the reader owes: if it cannot go, the stream is over anyway."""
        try:
            self._write(data)
        except OSError:
            self.ended = True

    def send_text(self, text: str) -> None:
        self._send(TEXT_OP, text.encode())

    def send_close(self) -> None:
        self._send(CLOSE_OP, NORMAL.to_bytes(2, "big"))

    def _send(self, opcode: int, payload: bytes) -> None:
        """A frame of ours; nothing after our close (RFC 6455 section 5.5.1)."""
        if self.close_sent:
            raise SendFailed("the socket is closing")
        self.close_sent = opcode == CLOSE_OP
        try:
            self._write(frame(opcode, payload))
        except OSError as exc:
            raise SendFailed(str(exc)) from exc

    def _write(self, data: bytes) -> None:
        """All of `data`, one writer at a time. One send() takes a frame whole unless the
        socket's buffer is full: gevent's sendall() costs 1.3 us more per call in Python."""
        with self.lock:
            sent = self.sock.send(data)
            if sent < len(data):
                self.sock.sendall(memoryview(data)[sent:])

    def shutdown(self) -> None:
        shut_both_ways(self.sock)

    def close(self, timeout: float) -> None:
        """Our close frame, then the server's answer (or the end of the stream) for at most `timeout`."""
        try:
            if not self.close_sent:
                self.send_close()
            deadline = time.monotonic() + timeout
            while not self.ended and (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                self._read()  # a timeout ends the stream for us: the wait is over
                while self._parse() is not None:  # nobody reads the messages any more
                    pass
        except Exception:  # already broken: closing is only tidying up
            pass
        end_stream(self.sock)

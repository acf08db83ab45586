"""--ws-engine websockets: the sans-I/O protocol of the `websockets` package over a plain socket.

Under Locust the socket is gevent's (monkey-patched). One recv() of up to READ_SIZE bytes
feeds the protocol, which parses every frame in it (masking and unmasking in C, with the
package's speedups); recv() then hands them out one by one before reading again. The
protocol answers the server's pings and close frames itself: whatever it queues is written
right after each read.
"""

import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHeader, InvalidStatus, InvalidURI
from websockets.frames import Opcode
from websockets.headers import build_host
from websockets.http11 import Response
from websockets.typing import BytesLike, Origin, Subprotocol
from websockets.uri import WebSocketURI, parse_uri

from load.config.handshake import Handshake
from load.wire import errors
from load.wire.engines import BINARY, CLOSE, TEXT, ConnectFailed, SendFailed

READ_SIZE = 65536
T = TypeVar("T")
_KINDS = {Opcode.TEXT: TEXT, Opcode.BINARY: BINARY}


def connect(url: str, timeout: float, handshake: Handshake | None) -> "SansIOSocket":
    sock, protocol, deadline = open_stream(url, timeout, handshake)
    events = upgraded(sock, lambda: _handshake(sock, protocol, handshake, deadline))
    return SansIOSocket(sock, protocol, events)


def upgraded(sock: socket.socket, handshake_step: Callable[[], T]) -> T:
    """The handshake's result; if it fails, the stream is closed and the failure classified."""
    try:
        result = handshake_step()
    except ConnectFailed:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise ConnectFailed(errors.classify_connect_error(exc)) from exc
    sock.settimeout(None)  # pong timeouts are the user's to track
    return result


def open_stream(
    url: str, timeout: float, handshake: Handshake | None
) -> tuple[socket.socket, ClientProtocol, float]:
    """The TCP (and TLS) stream to the URL's host and the protocol that will speak on it;
    the deadline is when the whole connect, handshake included, times out."""
    try:
        uri = parse_uri(url)
    except InvalidURI as exc:  # LoadConfig lets only ws:// and wss:// URLs through; another caller may not
        raise ConnectFailed(errors.classify_connect_error(exc)) from exc
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
    except OSError as exc:
        raise ConnectFailed(errors.classify_connect_error(exc)) from exc
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as websocket-client sets it
        if uri.secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=uri.host)
    except OSError as exc:
        sock.close()
        raise ConnectFailed(errors.classify_connect_error(exc)) from exc
    protocol = ClientProtocol(
        uri,
        origin=Origin(handshake.origin if handshake and handshake.origin else default_origin(uri)),
        # None, not []: an empty list would send an empty Sec-WebSocket-Protocol header.
        subprotocols=[Subprotocol(p) for p in handshake.subprotocols]
        if handshake and handshake.subprotocols
        else None,
        max_size=None,  # as websocket-client: no limit on a message's size
    )
    return sock, protocol, deadline


def default_origin(uri: WebSocketURI) -> str:
    """The Origin websocket-client sends when none is given: a server's origin check
    (Django's AllowedHostsOriginValidator refuses a handshake without one) sees the same."""
    return f"{'https' if uri.secure else 'http'}://{build_host(uri.host, uri.port, uri.secure)}"


def send_upgrade(sock: socket.socket, protocol: ClientProtocol, handshake: Handshake | None) -> None:
    """The upgrade request, with the handshake's headers and cookie."""
    request = protocol.connect()
    if handshake:
        for name, value in handshake.headers:
            request.headers[name] = value
        if handshake.cookie:
            request.headers["Cookie"] = handshake.cookie
    protocol.send_request(request)
    sock.sendall(b"".join(protocol.data_to_send()))


def read_some(sock: socket.socket, deadline: float) -> bytes:
    """One read of the handshake's answer, within the connect's deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ConnectFailed(errors.WsFailure(errors.CONNECT_TIMEOUT))
    sock.settimeout(remaining)
    return sock.recv(READ_SIZE)


def check_response(protocol: ClientProtocol, handshake: Handshake | None) -> None:
    """Raises ConnectFailed unless the protocol accepted the server's response."""
    failure = protocol.handshake_exc
    if isinstance(failure, InvalidStatus):
        status = failure.response.status_code
        raise ConnectFailed(errors.rejected_with_status(status), status)
    if failure is not None:
        raise ConnectFailed(errors.classify_connect_error(failure))
    if handshake and handshake.subprotocols and protocol.subprotocol is None:
        # websocket-client refuses a server that chose none of the offered subprotocols: so do we.
        raise ConnectFailed(errors.classify_connect_error(InvalidHeader("Sec-WebSocket-Protocol")))


def hung_up() -> ConnectFailed:
    """Closed before any response: the server took TCP but never upgraded."""
    return ConnectFailed(errors.classify_connect_error(ConnectionResetError()))


def _handshake(
    sock: socket.socket, protocol: ClientProtocol, handshake: Handshake | None, deadline: float
) -> list[Any]:
    """Send the upgrade, read until the response; the events parsed after it (frames the
    server sent at once, e.g. a welcome) are returned to be delivered first."""
    send_upgrade(sock, protocol, handshake)
    while True:
        data = read_some(sock, deadline)
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        events = protocol.events_received()
        if events and isinstance(events[0], Response):
            break
        if not data:
            raise hung_up()
    check_response(protocol, handshake)
    sock.sendall(b"".join(protocol.data_to_send()))  # answers to pings or a close that came with the response
    return events[1:]


def shut_both_ways(sock: socket.socket) -> None:
    """Ends the TCP stream both ways (a reader blocked in recv() wakes to its end), if it is not over yet."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def end_stream(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:  # already broken: closing is only tidying up
        pass


class SansIOSocket:
    def __init__(self, sock: socket.socket, protocol: ClientProtocol, events: list[Any]):
        self.sock, self.protocol = sock, protocol
        self.events: deque[Any] = deque(events)  # Frames (only the handshake gives other events)
        self.fragments: list[BytesLike] = []  # a fragmented message so far
        self.fragmented_kind = TEXT
        self.ended = False  # the stream is over (or the close frame came): recv() gives the close
        # The reader (answering pings and closes) and the sender write from two greenlets.
        self.write_lock = threading.Lock()

    def recv(self) -> tuple[str, Any]:
        events = self.events
        while True:
            while events:
                frame = events.popleft()
                opcode = frame.opcode
                kind = _KINDS.get(opcode)
                if kind is not None:
                    if frame.fin:
                        data = frame.data  # the parser gives a bytearray: bytes, as websocket-client gives
                        return kind, data if type(data) is bytes else bytes(data)
                    self.fragmented_kind, self.fragments = kind, [frame.data]
                elif opcode is Opcode.CONT:
                    self.fragments.append(frame.data)
                    if frame.fin:
                        data, self.fragments = b"".join(self.fragments), []
                        return self.fragmented_kind, data
                elif opcode is Opcode.CLOSE:
                    return self._end()
            if self.ended:
                return self._end()
            self._read()

    def _read(self) -> None:
        """One socket read into the protocol: its frames join self.events; at the end of
        the stream (or a protocol error, answered by the protocol's own close) self.ended."""
        try:
            data = self.sock.recv(READ_SIZE)
        except OSError:
            data = b""
        protocol = self.protocol
        with self.write_lock:
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            self.events.extend(protocol.events_received())
            try:
                self._flush()
            except OSError:  # the reply could not go: the stream is over
                data = b""
        if not data or protocol.parser_exc is not None:
            self.ended = True

    def _end(self) -> tuple[str, int]:
        self.ended = True
        received = self.protocol.close_rcvd
        return CLOSE, received.code if received is not None else errors.NO_CLOSE_FRAME

    def _flush(self) -> None:
        """Writes what the protocol has queued; the caller holds write_lock."""
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)
            else:  # the protocol's end of stream
                try:
                    self.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def send_text(self, text: str) -> None:
        self._send(lambda: self.protocol.send_text(text.encode()))

    def send_close(self) -> None:
        self._send(self.protocol.send_close)

    def _send(self, queue_frame: Callable[[], None]) -> None:
        try:
            with self.write_lock:
                queue_frame()
                self._flush()
        except Exception as exc:  # an OSError, or the protocol's InvalidState once closing
            raise SendFailed(str(exc)) from exc

    def shutdown(self) -> None:
        shut_both_ways(self.sock)

    def close(self, timeout: float) -> None:
        """Our close frame, then the server's answer (or the end of the stream) for at most `timeout`."""
        try:
            if self.protocol.close_sent is None:
                self.send_close()
            self.sock.settimeout(timeout)
            deadline = time.monotonic() + timeout
            while self.protocol.close_rcvd is None and not self.ended and time.monotonic() < deadline:
                self._read()
                self.events.clear()  # nobody reads them any more
        except Exception:  # already broken: closing is only tidying up
            pass
        end_stream(self.sock)

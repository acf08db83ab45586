"""Issue 15, a leaner engine under the same user: both --ws-engine engines pass the same tests.

A raw server on loopback (a thread writing the frames byte for byte) makes what a real
server makes only by chance: many frames in one TCP segment, a fragmented message, a
server ping, a close with or without a code, a TCP stream that just ends. Daphne answers
the round trips and the origin check's 403.
"""

import base64
import hashlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from conftest import stack_config
from load.config.handshake import handshake_from
from load.config.settings import WS_ENGINES, LayerOptions
from load.supervise.stack import Stack
from load.wire import errors
from load.wire.engines import BINARY, CLOSE, TEXT, ConnectFailed, Socket, connector
from load.wire.protocol import PONG, Reply, TargetAppCodec
from support import still_running

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 5.0


def server_frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A frame as a server sends it: unmasked, with a 7-, 16- or 64-bit length."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        return head + bytes([n]) + payload
    if n < 65536:
        return head + bytes([126]) + struct.pack("!H", n) + payload
    return head + bytes([127]) + struct.pack("!Q", n) + payload


def read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the client ended the stream")
        data += chunk
    return data


def client_frame(conn: socket.socket) -> tuple[int, bytes]:
    """One frame from the client (masked, as a client must send it): (opcode, payload)."""
    first, second = read_exact(conn, 2)
    assert second & 0x80, "a client frame must be masked"
    n = second & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(conn, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(conn, 8))[0]
    mask = read_exact(conn, 4)
    masked, keys = read_exact(conn, n), (mask * (n // 4 + 1))[:n]
    payload = (int.from_bytes(masked, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")
    return first & 0x0F, payload


class RawServer:
    """One connection on 127.0.0.1: the handshake answered with `status`, then `script(conn)`."""

    def __init__(self, script: Callable[[socket.socket], None], status: int = 101, subprotocol: str = ""):
        self.script, self.status, self.subprotocol = script, status, subprotocol
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/raw/"
        self.headers: dict[str, str] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                request += read_exact(conn, 1)
            lines = request.decode().split("\r\n")[1:]
            self.headers = {
                k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)
            }
            if self.status == 101:
                accept = base64.b64encode(
                    hashlib.sha1(self.headers["sec-websocket-key"].encode() + GUID).digest()
                )
                reply = f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept.decode()}\r\n"
                if self.subprotocol:
                    reply += f"Sec-WebSocket-Protocol: {self.subprotocol}\r\n"
            elif self.status:
                reply = f"HTTP/1.1 {self.status} Refused\r\nContent-Length: 0\r\n"
            else:  # no answer at all: the script decides (hang up, or wait)
                reply = ""
            if reply:
                conn.sendall((reply + "\r\n").encode())
            self.script(conn)
        except BaseException as exc:  # the test asserts there was none
            self.error = exc
        finally:
            conn.close()
            self.listener.close()

    def done(self) -> None:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the raw server's script did not finish"
        if self.error is not None:
            raise self.error


@pytest.fixture(params=WS_ENGINES)
def connect(request) -> Callable[..., Socket]:
    engine = connector(request.param)

    def open_socket(url: str, handshake=None, timeout: float = TIMEOUT) -> Socket:
        return engine(url, timeout, handshake)

    return open_socket


def messages(ws: Socket) -> Iterator[tuple[str, object]]:
    while True:
        kind, payload = ws.recv()
        yield kind, payload
        if kind == CLOSE:
            return


# -- frames, closes and pings, byte for byte ------------------------------------------------


def test_many_frames_in_one_segment_all_arrive_in_order_with_a_fragmented_one_and_a_binary(connect):
    texts = [f'{{"type": "pong", "seq": {i}}}'.encode() for i in range(200)]
    burst = b"".join(server_frame(0x1, text) for text in texts)
    burst += server_frame(0x1, b"frag", fin=False) + server_frame(0x0, b"men", fin=False)
    burst += server_frame(0x9, b"between")  # a control frame between fragments (RFC 6455 5.4)
    burst += server_frame(0x0, b"ted") + server_frame(0x2, b"\x00\xff")
    burst += server_frame(0x1, b"y" * 70_000)  # a 64-bit length
    burst += server_frame(0x8, struct.pack("!H", 1000))
    server = RawServer(lambda conn: (conn.sendall(burst), client_frame(conn), client_frame(conn)))
    ws = connect(server.url)
    got = list(messages(ws))
    ws.close(1.0)
    server.done()
    assert got == [(TEXT, text) for text in texts] + [
        (TEXT, b"fragmented"),
        (BINARY, b"\x00\xff"),
        (TEXT, b"y" * 70_000),
        (CLOSE, 1000),
    ]
    assert all(type(payload) is bytes for kind, payload in got if kind != CLOSE)  # what the codecs read


def test_a_server_close_gives_its_code_and_is_answered(connect):
    seen: list[tuple[int, bytes]] = []
    server = RawServer(
        lambda conn: (
            conn.sendall(server_frame(0x8, struct.pack("!H", 4001) + b"bye")),
            seen.append(client_frame(conn)),
        )
    )
    ws = connect(server.url)
    assert ws.recv() == (CLOSE, 4001)
    server.done()
    ws.close(1.0)
    assert seen[0][0] == 0x8  # the client's close frame answers the server's


def test_a_close_frame_without_a_code_gives_1005(connect):
    server = RawServer(lambda conn: (conn.sendall(server_frame(0x8)), client_frame(conn)))
    ws = connect(server.url)
    assert ws.recv() == (CLOSE, 1005)
    server.done()
    ws.close(1.0)


def test_a_stream_that_ends_without_a_close_frame_gives_1006(connect):
    server = RawServer(lambda conn: conn.sendall(server_frame(0x1, b"last")))
    ws = connect(server.url)
    assert list(messages(ws)) == [(TEXT, b"last"), (CLOSE, errors.NO_CLOSE_FRAME)]
    server.done()
    ws.close(0.5)


def test_a_server_ping_is_answered_with_its_payload(connect):
    def script(conn: socket.socket) -> None:
        conn.sendall(server_frame(0x9, b"heartbeat"))
        opcode, payload = client_frame(conn)
        conn.sendall(
            server_frame(0x1, f"{opcode}:".encode() + payload) + server_frame(0x8, struct.pack("!H", 1000))
        )
        client_frame(conn)

    server = RawServer(script)
    ws = connect(server.url)
    assert ws.recv() == (TEXT, b"10:heartbeat")  # 0xA, a pong
    assert ws.recv() == (CLOSE, 1000)
    server.done()
    ws.close(1.0)


def test_sends_reach_the_server_in_order_and_shutdown_ends_the_reader(connect):
    seen: list[tuple[int, bytes]] = []
    big = "x" * 8_000_000  # a 64-bit length, more than the socket's buffer takes in one send()

    def script(conn: socket.socket) -> None:
        seen.extend(client_frame(conn) for _ in range(3))
        conn.sendall(server_frame(0x1, b"got them"))

    server = RawServer(script)
    ws = connect(server.url)
    ws.send_text("one")
    ws.send_text(big)
    ws.send_close()
    assert ws.recv() == (TEXT, b"got them")
    ws.shutdown()
    assert ws.recv() == (CLOSE, errors.NO_CLOSE_FRAME)
    ws.close(0.2)
    server.done()
    assert seen[:2] == [(0x1, b"one"), (0x1, big.encode())] and seen[2][0] == 0x8


# -- the handshake ----------------------------------------------------------------------


def test_the_handshake_carries_headers_origin_cookie_and_subprotocols(connect):
    server = RawServer(
        lambda conn: conn.sendall(server_frame(0x8, struct.pack("!H", 1000))), subprotocol="chat.v1"
    )
    handshake = handshake_from(["X-Tenant: acme"], "https://chat.example", "sessionid=s3", "chat.v1, chat.v0")
    ws = connect(server.url, handshake)
    ws.close(0.5)
    server.done()
    headers = server.headers
    assert headers["x-tenant"] == "acme" and headers["origin"] == "https://chat.example"
    assert headers["cookie"] == "sessionid=s3"
    assert [p.strip() for p in headers["sec-websocket-protocol"].split(",")] == ["chat.v1", "chat.v0"]


def test_without_a_handshake_only_the_default_origin_is_sent(connect):
    server = RawServer(lambda conn: conn.sendall(server_frame(0x8, struct.pack("!H", 1000))))
    connect(server.url).close(0.5)
    server.done()
    port = server.url.split(":")[2].split("/")[0]
    assert server.headers["origin"] == f"http://127.0.0.1:{port}"  # what websocket-client has always sent
    assert not {"cookie", "sec-websocket-protocol", "sec-websocket-extensions"} & set(server.headers)


def test_a_server_that_chooses_none_of_the_subprotocols_offered_is_refused(connect):
    server = RawServer(lambda conn: None)
    with pytest.raises(ConnectFailed) as failed:
        connect(server.url, handshake_from([], "", "", "chat.v1"))
    server.done()
    assert failed.value.failure.kind == errors.HANDSHAKE_REJECTED and failed.value.status is None


def test_a_refusing_status_is_handshake_rejected_with_the_status_for_the_hint(connect):
    server = RawServer(lambda conn: None, status=401)
    with pytest.raises(ConnectFailed) as failed:
        connect(server.url)
    server.done()
    assert (failed.value.failure.kind, failed.value.failure.detail, failed.value.status) == (
        errors.HANDSHAKE_REJECTED,
        "HTTP 401",
        401,
    )


def test_a_server_that_hangs_up_mid_handshake_rejects_it_and_one_that_never_answers_times_out(connect):
    server = RawServer(lambda conn: None, status=0)
    with pytest.raises(ConnectFailed) as failed:
        connect(server.url)
    server.done()
    assert failed.value.failure.kind == errors.HANDSHAKE_REJECTED and failed.value.status is None

    answered = threading.Event()
    server = RawServer(lambda conn: answered.wait(TIMEOUT), status=0)
    with pytest.raises(ConnectFailed) as failed:
        connect(server.url, timeout=0.3)
    answered.set()
    server.done()
    assert failed.value.failure.kind == errors.CONNECT_TIMEOUT


def test_wss_speaks_tls_first(connect):
    """No certificate here to finish a TLS handshake: the first byte shows TLS is spoken."""
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"wss://127.0.0.1:{listener.getsockname()[1]}/ws/ping/"
    first: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        first.append(conn.recv(1))
        conn.close()
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with pytest.raises(ConnectFailed) as failed:
        connect(url)
    thread.join(TIMEOUT)
    assert first == [b"\x16"]  # a TLS handshake record
    assert failed.value.failure.kind == errors.HANDSHAKE_REJECTED


def test_a_closed_port_is_connect_refused(connect):
    probe = socket.create_server(("127.0.0.1", 0))
    url = f"ws://127.0.0.1:{probe.getsockname()[1]}/ws/ping/"
    probe.close()
    with pytest.raises(ConnectFailed) as failed:
        connect(url)
    assert failed.value.failure.kind == errors.CONNECT_REFUSED and failed.value.status is None


# -- Daphne -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daphne(tmp_path_factory):
    """One Daphne serving the target app and the chat app behind its origin check."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ALLOWED_HOSTS", "chat.example")
        stack = Stack(stack_config(tmp_path_factory.mktemp("engines"), app=LayerOptions(layer="memory")))
        with stack:
            yield stack
    assert still_running(stack.pids()) == []


def test_pings_of_every_size_come_back_from_daphne(connect, daphne):
    ws = connect(daphne.instances[0].ws_url())
    for seq, size in enumerate((0, 200, 65_000), start=1):  # 7- and 16-bit lengths both ways
        codec = TargetAppCodec(0.0, 0.0, size)
        ws.send_text(codec.encode(seq))
        kind, payload = ws.recv()
        assert (kind, codec.decode(payload)) == (TEXT, Reply(PONG, seq)) and len(payload) > size
    ws.send_text(TargetAppCodec(0.0, 0.0, 70_000).encode(4))  # a 64-bit length, which the app refuses by size
    kind, payload = ws.recv()
    assert kind == TEXT and b"frame of 70037 characters exceeds" in payload
    ws.close(1.0)


def test_daphne_behind_the_origin_check_refuses_with_403_and_the_origin_hint(connect, daphne):
    url = daphne.instances[0].ws_url("/ws/chat/lobby/")
    with pytest.raises(ConnectFailed) as failed:
        connect(url)
    assert (failed.value.failure.kind, failed.value.failure.detail) == (errors.HANDSHAKE_REJECTED, "HTTP 403")
    assert "--origin" in errors.handshake_hint(failed.value.status)
    ws = connect(url, handshake_from([], "https://chat.example", "", ""))  # the right Origin opens it
    ws.send_text('{"message": "hello"}')
    kind, payload = ws.recv()
    assert kind == TEXT and b"hello" in payload
    ws.close(1.0)

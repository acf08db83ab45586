"""The Locust user: one websocket per user, pings on an open-loop schedule.

Two greenlets per user. The user's own greenlet connects, reads frames until the socket
ends, backs off and reconnects, forever: a failed connect never kills the user (Locust
would drop it from the count and show the failure only under exceptions). The sender
greenlet keeps the schedule: ping k is due at t0 + k / rate, whether or not the previous
pong came back; a ping that comes due while the socket is down is counted as
`not_sent_disconnected`. Latency runs from the due time.

Our own stop is no failure: once Locust begins to stop the users (test_stopping), no ping
comes due any more, and a ping still unanswered when the user stops is `in_flight`.

Everything is reported twice: to Locust through `events.request` (request type WS,
names `connect <path>` and `ping <path>`), and to this process's Timeline per second.
Locust gets a response time only for what succeeded (a pong's latency, a handshake's
duration); failures go with response_time None, so they count in Locust's failures and
exit code but stay out of its percentiles, as they stay out of ours.
"""

import itertools
import logging
import random
import secrets
import time
from collections import OrderedDict
from typing import NamedTuple

import gevent
from locust import User, constant, task
from locust.exception import StopUser

from load.config.options import load_config
from load.config.settings import ConfigError, LoadConfig, path_knobs
from load.measure import clock
from load.measure.deliveries import SocketLife
from load.measure.timeline import Timeline, timeline_for
from load.runfolder.names import CONNECT_OK
from load.wire import errors
from load.wire.engines import BINARY, CLOSE, TEXT, ConnectFailed, SendFailed, Socket, connector
from load.wire.errors import WsFailure
from load.wire.protocol import BROADCAST, ERROR, OTHER, PONG, WELCOME, TargetAppCodec, TemplateCodec

_user_numbers = itertools.count()
# Unseeded users share one generator: a Random holds 2.8 KiB of state, a tenth of what an
# idle socket costs in all.
_shared_rng = random.Random()
# Template mode's {user}: this process's tag and the user's number, unique across the
# workers of a distributed run (each numbers its users from 0).
_PROCESS_TAG = secrets.token_hex(3)
logger = logging.getLogger("load")
_hinted: set[tuple[str, str]] = set()  # (path, refusal) already explained in the log


class Pending(NamedTuple):  # one per ping sent: a tuple's construction is the cheapest
    due: float
    sent: float


def user_token(number: int) -> str:
    return f"u{_PROCESS_TAG}-{number}"


def codec_for(config: LoadConfig, path: str, number: int = 0):
    if config.protocol == "template":
        return TemplateCodec(config.ping_template, config.pong_field, user_token(number))
    knobs = {"sleep_ms": config.sleep_ms, "work_ms": config.work_ms, "payload_bytes": config.payload_bytes}
    knobs.update(path_knobs(path))  # this path's own knobs win
    return TargetAppCodec(knobs["sleep_ms"], knobs["work_ms"], int(knobs["payload_bytes"]))


def assignment(config: LoadConfig, number: int) -> tuple[str, str]:
    """User number -> (server URL, path): weighted over paths, round robin over servers."""
    spread = [path for path, weight in config.paths for _ in range(weight)]
    path = spread[number % len(spread)]
    base = config.targets[(number // len(spread)) % len(config.targets)]
    return base.rstrip("/") + path, path


class WebSocketSession:
    """One user's socket, its schedule and its pending pings."""

    def __init__(
        self, user: User, config: LoadConfig, url: str, path: str, timeline: Timeline, number: int = 0
    ):
        self.user, self.config, self.url, self.path, self.timeline = user, config, url, path, timeline
        # With a seed, user N keeps the same phase, jitter and backoff in every run (sweeps compare like with like).
        self.rng = random.Random(f"{config.seed}-{number}") if config.seed else _shared_rng
        self.fresh_socket = False  # no pong yet on the current socket
        self.codec = codec_for(config, path, number)
        self.connect = connector(config.ws_engine)
        self.ws: Socket | None = None
        self.abandoned: Socket | None = None  # a socket we closed ourselves
        self.pending: OrderedDict[int, Pending] = OrderedDict()
        self.seq = 0
        self.life: SocketLife | None = None  # the current socket, for the room delivery accounting
        self.sender: gevent.Greenlet | None = None
        self.ping_name = f"ping {path}"  # Locust's request name, made once

    # -- the user's greenlet: connect, read, reconnect ------------------------------------

    def run(self) -> None:
        failures = 0
        while True:
            ws = self._connect()
            if ws is None:
                failures += 1
                gevent.sleep(self._backoff(failures))
                continue
            failures = 0
            if self.sender is None:  # the schedule starts with the first socket, then never waits
                interval = 1.0 / self.config.ping_rate
                t0 = clock.now() + self.rng.uniform(0, interval)  # users do not ping in lockstep
                self.sender = gevent.spawn(self._send_loop, t0, interval)
            self._read_until_closed(ws)
            gevent.sleep(self._backoff(1))

    def stop(self) -> None:
        """Called from on_stop: nothing of this user may outlive it."""
        if self.sender is not None:
            # Dead before the socket closes: a sender still running would find it gone and
            # count our own close as a ping not sent, or a send failed.
            self.sender.kill(block=True)
        self._leave(clock.now(), stopped=True)  # before close(), which reads (and drops) frames still coming
        ws, self.ws = self.ws, None
        if ws is not None:
            self.timeline.connections_open -= 1
            ws.close(timeout=0.2)  # the socket may already be gone; we are leaving anyway
        for pending in self.pending.values():
            self.timeline.ping_done(self.path, pending.due, errors.IN_FLIGHT)
        self.pending.clear()

    def _backoff(self, failures: int) -> float:
        cap = min(self.config.reconnect_max, self.config.reconnect_min * 2 ** (failures - 1))
        return self.rng.uniform(cap / 2, cap)

    def _connect(self) -> Socket | None:
        started = time.perf_counter()  # a duration: never moved by the clock's offset
        name = f"connect {self.path}"
        try:
            ws = self.connect(self.url, self.config.connect_timeout, self.config.handshake)
        except ConnectFailed as exc:
            self.timeline.connect(self.path, clock.now(), exc.failure.kind)
            self._report(name, None, exc.failure)
            self._explain(exc)
            return None
        self.timeline.connect(self.path, clock.now(), CONNECT_OK)
        self.timeline.connections_open += 1
        self.life = self.timeline.deliveries.open(self.path)
        self.fresh_socket = True
        self.ws = ws
        self._report(name, (time.perf_counter() - started) * 1000)
        return ws

    def _explain(self, exc: ConnectFailed) -> None:
        """Once per path and refusal: what a refused handshake suggests the server wants
        (a run against an origin check would otherwise fail for its whole length unexplained)."""
        failure = exc.failure
        if exc.status is None or (self.path, failure.detail) in _hinted:
            return
        _hinted.add((self.path, failure.detail))
        logger.warning(
            "connect %s: %s %s; %s",
            self.path,
            failure.kind,
            failure.detail,
            errors.handshake_hint(exc.status),
        )

    def _read_until_closed(self, ws: Socket) -> None:
        while True:
            kind, payload = ws.recv()
            if kind == CLOSE:
                break
            if kind == TEXT or kind == BINARY:
                self._on_frame(payload, clock.now())
        self._on_closed(ws, payload)

    def _on_closed(self, ws: Socket, code: int) -> None:
        now = clock.now()
        self._leave(now)  # this reader's socket, abandoned or not: its frames were read until now
        if self.ws is ws:
            self.ws = None
            self.timeline.connections_open -= 1
        if ws is self.abandoned:
            self.timeline.client_closed(self.path, now)
        else:
            self.timeline.closed(self.path, now, code)
        for seq in list(self.pending):
            self._fail(seq, WsFailure(errors.CLOSED_BY_SERVER, str(code)))
        ws.close(timeout=0.1)  # already broken: closing is only tidying up

    def _leave(self, ts: float, stopped: bool = False) -> None:
        """The current socket is no longer read: its member leaves the room's accounting."""
        if self.life is not None:
            self.timeline.deliveries.close(self.life, ts, stopped)
            self.life = None

    def _on_frame(self, data: bytes | str, now: float) -> None:
        reply = self.codec.decode(data)
        life, deliveries = self.life, self.timeline.deliveries
        if life is not None:
            if reply.kind == WELCOME:
                deliveries.welcome(life, reply.sender, reply.detail, now)
            else:
                deliveries.other_frame(life)
                if reply.kind == PONG and reply.seq is not None:
                    deliveries.echo(life, reply.seq, now)
        if reply.kind == PONG:
            seq = reply.seq if reply.seq is not None else next(iter(self.pending), None)
            pending = self.pending.pop(seq, None) if seq is not None else None
            if pending is None:  # a late pong (its ping already failed), or one for no ping of ours
                self.timeline.unmatched(self.path, now)
            else:
                latency, service = (now - pending.due) * 1000, (now - pending.sent) * 1000
                self.timeline.ping_done(self.path, pending.due, errors.PONG, latency, service)
                if self.fresh_socket:  # service is back for this user: what recovery time measures
                    self.fresh_socket = False
                    self.timeline.first_pong(self.path, now)
                self.user.environment.events.request.fire(
                    request_type="WS",
                    name=self.ping_name,
                    response_time=latency,
                    response_length=len(data),
                    exception=None,
                    context={},
                )
        elif reply.kind == ERROR:
            seq = reply.seq if reply.seq in self.pending else next(iter(self.pending), None)
            if seq is not None:
                self._fail(seq, WsFailure(errors.BAD_PONG, reply.detail[:80]))
        elif reply.kind == BROADCAST:
            self.timeline.broadcast(self.path, now)
            if life is not None and reply.seq is not None:
                deliveries.broadcast(life, reply.sender, reply.seq, now)
        elif reply.kind == OTHER:
            self.timeline.unmatched(self.path, now)

    def _fail(self, seq: int, failure: WsFailure) -> None:
        pending = self.pending.pop(seq)
        self.timeline.ping_done(self.path, pending.due, failure.kind)
        self._report(self.ping_name, None, failure)

    # -- the sender greenlet: the open-loop schedule --------------------------------------

    def _send_loop(self, t0: float, interval: float) -> None:
        jitter = self.config.ping_jitter * interval
        for k in itertools.count():
            due = t0 + k * interval + (self.rng.uniform(-jitter, jitter) / 2 if jitter else 0)
            now = self._wait_until(due)
            if self.timeline.is_due(due):  # after the stop began: not due, but sent pings may still time out
                self._send_ping(due, now)

    def _wait_until(self, due: float) -> float:
        """Sleep until `due`, expiring pings whose pong timeout passes meanwhile."""
        while True:
            now = clock.now()
            self._expire(now)
            if now >= due:
                return now
            oldest = next(iter(self.pending.values()), None)
            wake = min(due, oldest.due + self.config.pong_timeout) if oldest else due
            gevent.sleep(max(wake - now, 0.001))

    def _expire(self, now: float) -> None:
        while self.pending:
            seq, pending = next(iter(self.pending.items()))
            if now - pending.due < self.config.pong_timeout:
                return
            if self.config.reconnect_on_timeout and self.ws is not None:
                self._give_up_on_socket()
                return
            self._fail(seq, WsFailure(errors.PONG_TIMEOUT))

    def _give_up_on_socket(self) -> None:
        """A heartbeat client's move: no pong in time, so the socket is dead to it; every
        ping still waiting on it has timed out. The reader greenlet then reconnects."""
        ws, self.ws = self.ws, None
        assert ws is not None  # the only caller checks self.ws first
        self.abandoned = ws
        self.timeline.connections_open -= 1
        for seq in list(self.pending):
            self._fail(seq, WsFailure(errors.PONG_TIMEOUT))
        try:
            ws.send_close()  # our close frame, without waiting for the busy server's answer
        except SendFailed:  # already broken: the reader notices either way
            pass
        ws.shutdown()

    def _send_ping(self, due: float, now: float) -> None:
        ws, life = self.ws, self.life
        if ws is None:
            self.timeline.ping_due(self.path, due, sent=False)
            self.timeline.ping_done(self.path, due, errors.NOT_SENT_DISCONNECTED)
            self._report(self.ping_name, None, WsFailure(errors.NOT_SENT_DISCONNECTED))
            return
        self.seq += 1
        self.pending[self.seq] = Pending(due, now)
        self.timeline.ping_due(self.path, due, sent=True, lag_s=now - due)
        try:
            ws.send_text(self.codec.encode(self.seq))
        except SendFailed:
            self._fail(self.seq, WsFailure(errors.SEND_FAILED))
            return
        if life is not None:
            self.timeline.deliveries.sent(life, self.seq, now)

    def _report(self, name: str, response_time_ms: float | None, failure: WsFailure | None = None) -> None:
        """To Locust. A failure has no response time: None keeps it out of Locust's
        percentiles (StatsEntry counts it in num_none_requests) but in its failures."""
        self.user.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=response_time_ms,
            response_length=0,
            exception=failure,
            context={},
        )


class ChannelsUser(User):
    """A websocket user of a Channels server; configured by the plugin's options."""

    wait_time = constant(0)  # the task below lasts as long as the user does

    def on_start(self) -> None:
        try:
            config = load_config(self.environment)
        except ConfigError:
            raise StopUser() from None  # the plugin has said why, once
        number = next(_user_numbers)
        url, path = assignment(config, number)
        self.session = WebSocketSession(self, config, url, path, timeline_for(self.environment), number)

    @task
    def hold_a_socket(self) -> None:
        self.session.run()

    def on_stop(self) -> None:
        if hasattr(self, "session"):
            self.session.stop()

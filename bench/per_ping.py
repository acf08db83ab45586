"""What ours spends per ping beyond the socket: the user's bookkeeping, without any I/O.

    .venv/bin/python bench/per_ping.py            # about 10 s
    .venv/bin/python bench/per_ping.py --profile  # and the top functions by own time

A real WebSocketSession on a real Locust Environment (its stats listen to every request
event) sends through a socket that keeps nothing and is answered by calling the session's
frame handler with the pong the target app would send: schedule entry, timeline windows
(counts, two histograms), delivery accounting, codec both ways, Locust's request event.
Prints microseconds per ping for the target app's codec and for the template codec.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from locust.env import Environment  # noqa: E402  (monkey-patches, as under Locust)

from load.config.settings import LoadConfig  # noqa: E402
from load.measure.timeline import Timeline  # noqa: E402
from load.user.ws_user import ChannelsUser, WebSocketSession  # noqa: E402

PINGS = 200_000


class NullSocket:
    """Keeps the last text sent, for the answer."""

    last = ""

    def send_text(self, text: str) -> None:
        self.last = text


def session_for(config: LoadConfig) -> tuple[WebSocketSession, NullSocket]:
    environment = Environment(user_classes=[ChannelsUser])
    environment.create_local_runner()
    session = WebSocketSession(ChannelsUser(environment), config, "ws://127.0.0.1:9/ws/", "/ws/", Timeline())
    sock = NullSocket()
    session.ws = sock  # type: ignore[assignment]
    session.life = session.timeline.deliveries.open("/ws/")
    return session, sock


def run(session: WebSocketSession, sock: NullSocket, answer, pings: int) -> float:
    """Seconds of CPU per ping: send, answer, take the windows once a second's worth."""
    started = time.process_time()
    t = 1_000_000.0
    for k in range(pings):
        due = t + k * 0.001
        session._send_ping(due, due)
        session._on_frame(answer(sock.last, session.seq), due + 0.0005)
        if k % 1000 == 999:  # the recorder takes the windows once a second
            session.timeline.take()
            session.timeline.deliveries.take()
    return (time.process_time() - started) / pings


def target_answer(_sent: str, seq: int) -> bytes:
    return b'{"type": "pong", "seq": %d}' % seq


def template_answer(_sent: str, seq: int) -> bytes:
    return b'{"seq": %d}' % seq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="store_true", help="print the top functions by own time")
    args = parser.parse_args()
    cases = {
        "target app codec": (LoadConfig(targets=("ws://127.0.0.1:9",)), target_answer),
        "template codec": (
            LoadConfig(
                targets=("ws://127.0.0.1:9",),
                protocol="template",
                ping_template='{"seq": {seq}}',
                pong_field="seq",
            ),
            template_answer,
        ),
    }
    for name, (config, answer) in cases.items():
        session, sock = session_for(config)
        run(session, sock, answer, PINGS // 10)  # warm up
        per_ping = run(session, sock, answer, PINGS)
        print(f"{name:<18} {per_ping * 1e6:6.2f} us per ping (send + pong, {PINGS:,} pings)")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(run, session, sock, answer, PINGS // 4)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(14)


if __name__ == "__main__":
    main()

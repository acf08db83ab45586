"""Each worker measures how far the master's clock is from its own, as NTP does, over
Locust's own master-worker connection: it sends its time t0, the master answers with its
time tm, the answer arrives at t1; the master's clock is then tm - (t0 + t1) / 2 ahead,
give or take half the round trip. Of the answers kept, the one with the shortest round trip
sets load.measure.clock's offset: a few probes just after the worker starts, then one every
PROBE_EVERY_S, so a clock that drifts is followed.

With the offset, a worker whose clock is seconds off still puts each ping in the master's
second; the master's clock is the run's (its events, the server's logs read on its host).
"""

import logging
from collections import deque
from typing import Any

import gevent
import gevent.event

from load.measure import clock

logger = logging.getLogger("load")

ASK, ANSWER = "channels_clock_ask", "channels_clock_answer"
FIRST_PROBES, PROBE_EVERY_S = 5, 30.0
QUICK_PROBES_MAX = 100  # unanswered (a master without this plugin?): slow down
KEPT = 10  # answers the estimate is taken from: the last few minutes'
NOTABLE_S = 0.5  # an offset worth a line in the log


def serve_the_clock(runner: Any) -> None:
    """On the master: answer each worker's probe with this host's time."""

    def answer(environment: Any, msg: Any, **_kwargs: Any) -> None:
        runner.send_message(ANSWER, {"t0": msg.data["t0"], "tm": clock.now()}, client_id=msg.node_id)

    runner.register_message(ASK, answer)


class ClockProbe:
    """On a worker: probes the master's clock and keeps load.measure.clock's offset."""

    def __init__(self, runner: Any):
        self.runner = runner
        self.answers: deque[tuple[float, float]] = deque(maxlen=KEPT)  # (round trip, offset)
        self.said = False
        self.first = gevent.event.Event()  # set by the first answer
        runner.register_message(ANSWER, self.on_answer)
        self.greenlet = gevent.spawn(self.probe_forever)

    def probe_forever(self) -> None:
        sent = 0
        while True:
            self.runner.send_message(ASK, {"t0": clock.local_now()})
            sent += 1
            # Quickly until a few answers came (the master may not listen yet), then seldom.
            quick = len(self.answers) < FIRST_PROBES and sent < QUICK_PROBES_MAX
            gevent.sleep(0.2 if quick else PROBE_EVERY_S)

    def check_measured(self) -> None:
        """As the users start: a schedule begun on the uncorrected clock jumps when the first
        answer moves it. (Not waited for: answers arrive on the greenlet that starts the users.)"""
        if not self.first.is_set():
            logger.warning(
                "the master has not answered this worker's clock probe yet: its clock is taken as is"
            )

    def on_answer(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        t1 = clock.local_now()
        t0, tm = msg.data["t0"], msg.data["tm"]
        self.answers.append((t1 - t0, tm - (t0 + t1) / 2))
        round_trip, offset = min(self.answers)
        clock.set_offset(offset)
        self.first.set()
        if abs(offset) > NOTABLE_S and not self.said:
            self.said = True
            logger.warning(
                "this worker's clock is %.3f s %s the master's (round trip %.1f ms): its seconds are moved to the master's",
                abs(offset),
                "behind" if offset > 0 else "ahead of",
                round_trip * 1000,
            )

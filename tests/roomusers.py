"""A locustfile for the delivery accounting's end-to-end test: five members of one room
whose every broadcast is scripted, so the number each member is owed is known.

Every user connects once (no reconnect), waits until all five have their welcome (T0 is
then the same for all), sends its pings at fixed offsets from T0 and stays, except:
- SlowMember's one ping sleeps 1 s in its consumer, which meanwhile reads nothing from
  its channel: with a small channel capacity, broadcasts to it are dropped (real losses),
  and it is a sender that stops early;
- Leaver sends three pings, closes its socket at T0 + 2 s and never comes back.
"""

import sys
from pathlib import Path

import gevent
from gevent.event import Event

import load.user.plugin  # noqa: F401  (registers the options and event listeners)
from load.config.options import load_config
from load.measure.timeline import timeline_for
from load.user import ws_user

sys.path.insert(0, str(Path(__file__).parent))  # Locust imports this file without tests/ on the path
from roomscript import LEAVE_AT, MEMBERS, ROOM, SLOW, WAVE_1, WAVE_2  # noqa: E402

welcomed: list[float] = []
everyone_in = Event()


class ScriptedSession(ws_user.WebSocketSession):
    schedule: tuple[float, ...] = ()
    leave_at: float | None = None
    counted = False

    def run(self) -> None:
        ws = None
        while ws is None:  # the stack is up: a retry is rare
            ws = self._connect()
            if ws is None:
                gevent.sleep(0.2)
        self.sender = gevent.spawn(self._script)
        self._read_until_closed(ws)
        gevent.sleep(3600)  # never back; Locust's stop ends this

    def _on_frame(self, data, now: float) -> None:
        super()._on_frame(data, now)
        if not self.counted and self.life is not None and self.life.is_room:
            self.counted = True
            welcomed.append(now)
            if len(welcomed) == MEMBERS:
                everyone_in.set()

    def _script(self) -> None:
        everyone_in.wait()
        t0 = welcomed[-1] + 0.2
        for offset in self.schedule:
            due = t0 + offset
            self._send_ping(due, self._wait_until(due))
        if self.leave_at is not None:
            self._wait_until(t0 + self.leave_at)
            self._leave_socket()

    def _leave_socket(self) -> None:
        ws, self.ws = self.ws, None
        assert ws is not None
        self.abandoned = ws
        self.timeline.connections_open -= 1
        ws.send_close()
        ws.shutdown()


class ScriptedMember(ws_user.ChannelsUser):
    abstract = True
    path = ROOM
    schedule: tuple[float, ...] = WAVE_1 + WAVE_2
    leave_at: float | None = None

    def on_start(self) -> None:
        config = load_config(self.environment)
        url = config.targets[0] + self.path
        self.session = ScriptedSession(self, config, url, self.path, timeline_for(self.environment))
        self.session.schedule, self.session.leave_at = self.schedule, self.leave_at


class Stayer(ScriptedMember):
    fixed_count = 3


class SlowMember(ScriptedMember):
    fixed_count = 1
    path = SLOW
    schedule = (0.0,)


class Leaver(ScriptedMember):
    fixed_count = 1
    schedule = WAVE_1[:3]
    leave_at = LEAVE_AT

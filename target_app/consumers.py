"""One consumer per execution path that Channels offers; each answers pings with pongs.

| path | consumer | where `work_ms` runs |
|---|---|---|
| /ws/ping/ | AsyncPingConsumer | on the event loop itself (a blocking call in async code) |
| /ws/ping/sync/ | SyncPingConsumer | asgiref's single thread-sensitive thread |
| /ws/ping/pool/ | PoolPingConsumer | `sync_to_async(thread_sensitive=False)`: the pool ASGI_THREADS sizes |
| /ws/ping/db/ | DatabasePingConsumer | `database_sync_to_async`, with an ORM write and read |
| /ws/ping/layer/ | LayerPingConsumer | on the loop; the pong goes through the channel layer first |
| /ws/room/<name>/ | RoomConsumer | on the loop; the ping is fanned out with `group_send` |

`sleep_ms` is an `await asyncio.sleep` in every async consumer (the seed's reproduction)
and a `time.sleep` in the sync one, which cannot await.
"""

import asyncio
import json
import time

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer

from target_app import inflight
from target_app.models import PingRecord
from target_app.pingframes import INSTANCE, BadFrame, Ping, error, parse_ping, pong, seq_of


def blocking_work(milliseconds: float) -> None:
    time.sleep(milliseconds / 1000)


def record_ping(ping: Ping) -> int:
    """The ORM round trip of /ws/ping/db/; returns how many pings this instance stored."""
    PingRecord.objects.create(instance=INSTANCE, seq=ping.seq)
    blocking_work(ping.work_ms)
    return PingRecord.objects.filter(instance=INSTANCE).count()


class AsyncPingConsumer(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        try:
            ping = parse_ping(text_data, bytes_data)
        except BadFrame as exc:
            await self.send(error(str(exc), seq_of(text_data)))
            return
        with inflight.track():
            if ping.sleep_ms:
                await asyncio.sleep(ping.sleep_ms / 1000)
            await self.answer(ping)

    async def answer(self, ping: Ping) -> None:
        # Deliberately blocks the event loop: the mistake of calling sync code from async.
        blocking_work(ping.work_ms)
        await self.send(pong(ping))


class PoolPingConsumer(AsyncPingConsumer):
    async def answer(self, ping: Ping) -> None:
        await sync_to_async(blocking_work, thread_sensitive=False)(ping.work_ms)
        await self.send(pong(ping))


class DatabasePingConsumer(AsyncPingConsumer):
    async def answer(self, ping: Ping) -> None:
        rows = await database_sync_to_async(record_ping)(ping)
        await self.send(pong(ping, rows=rows))


class LayerPingConsumer(AsyncPingConsumer):
    async def answer(self, ping: Ping) -> None:
        if self.channel_layer is None:
            await self.send(error("no channel layer is configured", ping.seq))
            return
        blocking_work(ping.work_ms)
        await self.channel_layer.send(
            self.channel_name, {"type": "pong.relay", "seq": ping.seq, "pad": ping.pad}
        )

    async def pong_relay(self, event: dict) -> None:
        await self.send(pong(Ping(seq=event["seq"], pad=event["pad"]), via="layer"))


class RoomConsumer(AsyncPingConsumer):
    """Members of a room get each other's pings; the sender's own copy is its pong.

    Broadcasts carry the sender's channel name and seq, so a member can count the
    messages it missed from each sender.
    """

    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["name"]
        self.group = f"room.{self.room}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        welcome = {"type": "welcome", "room": self.room, "member": self.channel_name, "instance": INSTANCE}
        await self.send(json.dumps(welcome))

    async def disconnect(self, code: int) -> None:
        # Never runs when Daphne is killed or kills the app: the member leaks (FM-5).
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def answer(self, ping: Ping) -> None:
        blocking_work(ping.work_ms)
        message = {"type": "room.broadcast", "sender": self.channel_name, "seq": ping.seq, "pad": ping.pad}
        await self.channel_layer.group_send(self.group, message)

    async def room_broadcast(self, event: dict) -> None:
        if event["sender"] == self.channel_name:
            await self.send(pong(Ping(seq=event["seq"], pad=event["pad"]), via="group"))
            return
        broadcast = {"type": "broadcast", "room": self.room, "sender": event["sender"], "seq": event["seq"]}
        if event["pad"]:
            broadcast["pad"] = event["pad"]
        await self.send(json.dumps(broadcast))


class SyncPingConsumer(WebsocketConsumer):
    def receive(self, text_data=None, bytes_data=None):
        try:
            ping = parse_ping(text_data, bytes_data)
        except BadFrame as exc:
            self.send(error(str(exc), seq_of(text_data)))
            return
        with inflight.track():
            blocking_work(ping.sleep_ms + ping.work_ms)
            # After a SIGTERM this send waits forever on the stopped loop (FM-4).
            self.send(pong(ping))

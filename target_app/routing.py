from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import re_path

from target_app import chat, consumers
from target_app.compat import consumer_app

websocket_urlpatterns = [
    re_path(r"^ws/ping/$", consumer_app(consumers.AsyncPingConsumer)),
    re_path(r"^ws/ping/sync/$", consumer_app(consumers.SyncPingConsumer)),
    re_path(r"^ws/ping/pool/$", consumer_app(consumers.PoolPingConsumer)),
    re_path(r"^ws/ping/db/$", consumer_app(consumers.DatabasePingConsumer)),
    re_path(r"^ws/ping/layer/$", consumer_app(consumers.LayerPingConsumer)),
    # Channels group names allow only these characters, and fewer than 100 of them.
    re_path(r"^ws/room/(?P<name>[A-Za-z0-9_.-]{1,80})/$", consumer_app(consumers.RoomConsumer)),
    # Someone else's app behind Django's origin check (ALLOWED_HOSTS): for template mode.
    re_path(
        r"^ws/chat/(?P<room>[A-Za-z0-9_.-]{1,80})/$",
        AllowedHostsOriginValidator(consumer_app(chat.ChatConsumer)),
    ),
]

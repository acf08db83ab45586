from django.urls import re_path

from target_app import consumers

websocket_urlpatterns = [
    re_path(r"^ws/ping/$", consumers.AsyncPingConsumer.as_asgi()),
    re_path(r"^ws/ping/sync/$", consumers.SyncPingConsumer.as_asgi()),
    re_path(r"^ws/ping/pool/$", consumers.PoolPingConsumer.as_asgi()),
    re_path(r"^ws/ping/db/$", consumers.DatabasePingConsumer.as_asgi()),
    re_path(r"^ws/ping/layer/$", consumers.LayerPingConsumer.as_asgi()),
    # Channels group names allow only these characters, and fewer than 100 of them.
    re_path(r"^ws/room/(?P<name>[A-Za-z0-9_.-]{1,80})/$", consumers.RoomConsumer.as_asgi()),
]

"""The ASGI entry point Daphne serves: `daphne target_app.asgi:application`."""

import faulthandler
import os
import signal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "target_app.settings")

# `kill -USR1 <pid>` writes every thread's stack to the log: how an FM-4 hang is diagnosed.
faulthandler.register(signal.SIGUSR1, all_threads=True)

from channels.routing import URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from target_app.compat import protocol_router  # noqa: E402
from target_app.healthz import HealthzOr  # noqa: E402
from target_app.routing import websocket_urlpatterns  # noqa: E402

application = protocol_router(HealthzOr(django_asgi_app), URLRouter(websocket_urlpatterns))

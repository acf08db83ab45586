"""Settings for the target app, read only from environment variables.

| variable | default | meaning |
|---|---|---|
| REDIS_URL | redis://127.0.0.1:6379/0 | the channel layer's Redis |
| CHANNEL_LAYER | redis | redis (RedisChannelLayer), redis-pubsub, memory |
| CHANNEL_CAPACITY | 100 | channels_redis `capacity` |
| CHANNEL_EXPIRY | 60 | channels_redis `expiry`, seconds |
| GROUP_EXPIRY | 86400 | channels_redis `group_expiry`, seconds |
| REDIS_SOCKET_TIMEOUT | unset | unset = redis-py's default (5 s: FM-7); `none` = no timeout (its fix); a number = seconds (not applicable to channels_redis 2 on aioredis: see compat.py) |
| DATABASE_PATH | <tmp>/target_app.sqlite3 | the SQLite file of the /ws/ping/db/ endpoint |
| TARGET_INSTANCE | the pid | a name this process reports in pongs and /healthz |
| ALLOWED_HOSTS | * | comma-separated; /ws/chat/ accepts only an Origin naming one of them (AllowedHostsOriginValidator) |
"""

import os
import tempfile

from target_app.compat import layer_environment
from target_app.envconfig import channel_layers_from_env

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "target-app-is-a-test-server-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = [host.strip() for host in os.environ.get("ALLOWED_HOSTS", "*").split(",") if host.strip()]

INSTALLED_APPS = ["channels", "target_app"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "target_app.urls"
ASGI_APPLICATION = "target_app.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DATABASE_PATH", os.path.join(tempfile.gettempdir(), "target_app.sqlite3")),
        # Several Daphne processes share the file; wait for the write lock instead of failing.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django sets the process TZ from this; UTC keeps Daphne's log times comparable with ours.
TIME_ZONE = "UTC"
USE_TZ = True

CHANNEL_LAYERS = channel_layers_from_env(layer_environment(os.environ))

# Daphne's CLI configures the root handler; keep the loggers whose INFO lines we count.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "daphne.server": {"level": "INFO"},
        "channels_redis.core": {"level": "INFO"},
        "target_app": {"level": "INFO"},
    },
}

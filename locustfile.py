"""Locust entry point: websocket users of a Django Channels server, plus the suite's plugin.

    locust -f locustfile.py --stack local                      # web UI, local Redis + Daphne
    locust -f locustfile.py --headless --host ws://HOST:PORT -u 50 -r 10 -t 30s --paths /ws/ping/

Options: `locust -f locustfile.py --help` (the suite's are at the end); results go to
results/<run-id>/ (timeseries.csv, endpoints.csv, manifest.json, summary.json, locust_*.csv).
"""

import load.user.plugin  # noqa: F401  (registers the options and event listeners)
from load.user.ws_user import ChannelsUser  # noqa: F401  (the user class Locust runs)

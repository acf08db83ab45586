"""A bare websocket-client ping loop: the baseline our Locust user is compared with.

    python bench/bare_client.py ws://127.0.0.1:PORT/ws/ping/ SECONDS

Prints one JSON line: pongs and the CPU seconds this process used while pinging.
"""

import json
import resource
import sys
import time

import websocket


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(url: str, seconds: float) -> None:
    ws = websocket.create_connection(url, timeout=10)
    pongs, seq = 0, 0
    cpu_before, deadline = cpu_seconds(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        seq += 1
        ws.send(json.dumps({"type": "ping", "seq": seq}))
        while json.loads(ws.recv()).get("seq") != seq:
            pass
        pongs += 1
    print(json.dumps({"pongs": pongs, "cpu_s": cpu_seconds() - cpu_before, "seconds": seconds}))
    ws.close()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))

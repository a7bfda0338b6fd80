"""The baseline publisher: one paho-mqtt client publishing one constant, pre-built payload
in a tight loop (run as its own process so that its CPU time can be measured alone).

    python -m benchmarks.paho_loop HOST PORT QOS COUNT PAYLOAD_FILE

Prints a JSON line: messages published, acknowledged (QoS 1) and seconds.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    host, port, qos, count, payload_file = sys.argv[1:6]
    payload = open(payload_file, "rb").read()  # noqa: SIM115 - read once
    total, level = int(count), int(qos)
    acked = 0
    done = threading.Event()

    def on_publish(client: paho.Client, userdata: object, mid: int, *args: object) -> None:
        nonlocal acked
        acked += 1
        if acked >= total:
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="barnstorm-bench-paho")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(host, int(port))
    client.loop_start()
    started = time.perf_counter()
    for _ in range(total):
        client.publish("bench/paho/cm-00001/summary", payload, qos=level)
    if level:
        done.wait(120)
    seconds = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"published": total, "acknowledged": acked, "seconds": seconds}))


if __name__ == "__main__":
    main()

"""The baseline publisher: one paho-mqtt client publishing one constant, pre-built payload
in a tight loop, as its authors would run it (run as its own process so that its CPU time
can be measured alone).

    python -m benchmarks.paho_loop HOST PORT QOS COUNT PAYLOAD_FILE [WINDOW]

No ``on_publish`` callback (it costs paho about half its CPU at QoS 0, where it tells
nothing): completion is read from the message infos paho returns. At QoS 1 ``WINDOW`` is
paho's in-flight window (its default is 20; the caller tries several and keeps the best).
Prints a JSON line: messages published, delivered (written at QoS 0, acknowledged at
QoS 1) and seconds.
"""

from __future__ import annotations

import json
import sys
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    host, port, qos, count, payload_file = sys.argv[1:6]
    window = int(sys.argv[6]) if len(sys.argv) > 6 else 20
    payload = open(payload_file, "rb").read()  # noqa: SIM115 - read once
    total, level = int(count), int(qos)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"barnstorm-bench-paho-{window}")
    client.max_inflight_messages_set(window)
    client.connect(host, int(port))
    client.loop_start()
    started = time.perf_counter()
    infos = [
        client.publish("bench/paho/cm-00001/summary", payload, qos=level) for _ in range(total)
    ]
    infos[-1].wait_for_publish(120)  # in order: the last one settles after the others
    seconds = time.perf_counter() - started
    delivered = sum(1 for info in infos if info.is_published())
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"published": total, "delivered": delivered, "seconds": seconds}))


if __name__ == "__main__":
    main()

"""A baseline publisher on gmqtt (the asyncio MQTT client barnstorm published MQTT 5 with
before its own client spoke it): one client publishing one constant, pre-built payload
over MQTT 5, a hundred publishes in flight at a time, gmqtt's defaults otherwise (its own
process, so that its CPU time can be measured alone). A publish counts once gmqtt drops
it from its in-flight store, which it does at the PUBACK (or PUBCOMP).

    python -m benchmarks.gmqtt_loop HOST PORT QOS COUNT PAYLOAD_FILE

Prints a JSON line: messages acknowledged and seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv50
from gmqtt.storage import PersistentStorage

#: publishes in flight together: enough to keep the link busy, as an application would.
CONCURRENT = 100


class _Acks(PersistentStorage):  # type: ignore[misc]
    """gmqtt's in-flight store, counting what its acknowledgements settle."""

    def __init__(self, room: asyncio.Semaphore) -> None:
        super().__init__()
        self.room = room
        self.acked = 0

    def remove_message_by_mid(self, mid: int) -> Any:
        if mid in self._messages:  # a QoS 2 PUBREC swaps the packet; only the end counts
            self.acked += 1
            self.room.release()
        return super().remove_message_by_mid(mid)


async def publish(host: str, port: int, qos: int, count: int, payload: bytes) -> None:
    room = asyncio.Semaphore(CONCURRENT)
    acks = _Acks(room)
    client = Client(f"barnstorm-bench-gmqtt-{uuid.uuid4().hex[:8]}", persistent_storage=acks)
    await client.connect(host, port, version=MQTTv50)
    started = time.perf_counter()
    for _ in range(count):
        if qos:
            await room.acquire()
        client.publish("bench/gmqtt/cm-00001/summary", payload, qos=qos)
    while qos and acks.acked < count:
        await asyncio.sleep(0.001)
    seconds = time.perf_counter() - started
    await client.disconnect()
    print(json.dumps({"published": count, "acknowledged": acks.acked, "seconds": seconds}))


def main() -> None:
    host, port, qos, count, payload_file = sys.argv[1:6]
    payload = open(payload_file, "rb").read()  # noqa: SIM115 - read once
    asyncio.run(publish(host, int(port), int(qos), int(count), payload))


if __name__ == "__main__":
    main()

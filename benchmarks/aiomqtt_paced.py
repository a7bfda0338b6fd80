"""A baseline for the event-loop lag benchmark: aiomqtt (paho underneath) publishing a
constant, pre-built payload at a fixed rate, paced every 10 ms as a device fleet's
schedule would be, with the same probe of its event loop barnstorm runs.

    python -m benchmarks.aiomqtt_paced HOST PORT QOS RATE SECONDS PAYLOAD_FILE

Prints a JSON line: messages published, the seconds it took and the loop's lag (ms)
over the whole run, its connection included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid

import aiomqtt

from simulator.metrics.loop_lag import LoopLag

TICK = 0.01  # seconds between two bursts of publishes


async def publish(
    host: str, port: int, qos: int, rate: float, seconds: float, payload: bytes
) -> None:
    quiet = logging.getLogger("barnstorm-bench-aiomqtt")
    quiet.setLevel(logging.ERROR)
    identifier = f"barnstorm-bench-paced-{uuid.uuid4().hex[:8]}"
    lag = LoopLag()
    async with (
        lag.running(),
        aiomqtt.Client(host, port, identifier=identifier, logger=quiet) as client,
    ):
        published = 0
        pending: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        started = loop.time()
        while (now := loop.time()) < started + seconds:
            due = int((now - started) * rate) - published
            for _ in range(due):
                task = asyncio.create_task(
                    client.publish("bench/paced/cm-00001/summary", payload, qos=qos)
                )
                pending.add(task)
                task.add_done_callback(pending.discard)
            published += max(due, 0)
            await asyncio.sleep(TICK)
        if pending:
            await asyncio.wait(pending, timeout=10)
    print(json.dumps({"published": published, "seconds": seconds, "lag": lag.summary()}))


def main() -> None:
    host, port, qos, rate, seconds, payload_file = sys.argv[1:7]
    payload = open(payload_file, "rb").read()  # noqa: SIM115 - read once
    asyncio.run(publish(host, int(port), int(qos), float(rate), float(seconds), payload))


if __name__ == "__main__":
    main()

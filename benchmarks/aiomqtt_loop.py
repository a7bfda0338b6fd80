"""A baseline publisher on aiomqtt (paho underneath): one client publishing one constant,
pre-built payload, a hundred publishes awaited at a time, with aiomqtt's and paho's own
defaults otherwise (run as its own process so that its CPU time can be measured alone).

    python -m benchmarks.aiomqtt_loop HOST PORT QOS COUNT PAYLOAD_FILE VERSION

Prints a JSON line: messages published and seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import uuid

import aiomqtt
from aiomqtt.client import ProtocolVersion

#: publishes awaited together: enough to keep the link busy, as an application would.
CONCURRENT = 100


async def publish(host: str, port: int, qos: int, count: int, payload: bytes, version: str) -> None:
    protocol = ProtocolVersion.V5 if version == "5" else ProtocolVersion.V311
    identifier = f"barnstorm-bench-aiomqtt-{uuid.uuid4().hex[:8]}"
    # aiomqtt warns on every publish beyond ten pending ones; printing that is not publishing.
    quiet = logging.getLogger("barnstorm-bench-aiomqtt")
    quiet.setLevel(logging.ERROR)
    async with aiomqtt.Client(
        host, port, identifier=identifier, protocol=protocol, logger=quiet
    ) as client:
        started = time.perf_counter()
        for first in range(0, count, CONCURRENT):
            batch = range(first, min(first + CONCURRENT, count))
            await asyncio.gather(
                *(client.publish("bench/aiomqtt/cm-00001/summary", payload, qos=qos) for _ in batch)
            )
        seconds = time.perf_counter() - started
    print(json.dumps({"published": count, "seconds": seconds}))


def main() -> None:
    host, port, qos, count, payload_file, version = sys.argv[1:7]
    payload = open(payload_file, "rb").read()  # noqa: SIM115 - read once
    asyncio.run(publish(host, int(port), int(qos), int(count), payload, version))


if __name__ == "__main__":
    main()

"""The independent observer of ``--verify``: a subscriber on any broker that sees what the
broker delivered, so a run can tell what was acknowledged from what arrived.

A broker's acknowledgement says it took a message, not that its subscribers got it: over
3.1.1 a PUBACK carries no reason code, so a broker whose ACL refuses a topic, or that drops
QoS 2 messages beyond its in-flight quota, acknowledges them all the same. Only a
subscriber can tell. The observer is a process of its own (its CPU is not the load
generator's), on connections of its own, through aiomqtt (a client barnstorm did not
write), subscribed at the run's QoS or higher to the topics the run publishes; with
several connections it uses a shared subscription (``$share/...``) so the broker spreads
the messages over them. It keeps, per device, the sequence numbers it received (the
run of them from 0, and the few beyond a gap), how many came twice and how many came
after a higher one (out of order), and answers at the end in the read-back's format, so
the run reconciles against it as it does against a backend's store.

Each observer process has one connection; several (``--verify-connections``) share a
subscription. Parent and children talk in JSON lines: the parent writes the settings on the child's
standard input (a password never goes on a command line) and closes it to stop the
child; the child writes ``{"ready": true}`` once subscribed, ``{"received": N}`` as it
goes, and ``{"final": {...}}`` at its end (or ``{"error": "..."}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

import orjson

from simulator.errors import ConnectError
from simulator.transports.mqtt.settings import MqttSettings

#: seconds the observer's processes have to connect and subscribe.
READY_TIMEOUT = 20.0
#: seconds between the child's progress lines.
PROGRESS_EVERY = 0.2
#: bytes of the longest line the parent reads from the observer (its final answer).
FINAL_LIMIT = 1 << 30


class SeqBook:
    """Sequence numbers received per device, kept flat while nothing is lost."""

    def __init__(self) -> None:
        #: device -> [every seq below this arrived, highest seen, duplicates, out of order]
        self.devices: dict[str, list[int]] = {}
        self.beyond: dict[str, set[int]] = {}
        self.received = 0  # every delivery, duplicates included
        self.duplicates = 0
        self.unreadable = 0

    @property
    def unique(self) -> int:
        """Messages delivered at least once."""
        return self.received - self.duplicates

    def add(self, payload: bytes) -> None:
        """Book one delivered message by its envelope's ``device_id`` and ``seq``."""
        try:
            data = orjson.loads(payload)
            device, seq = data["device_id"], data["seq"]
            if not isinstance(device, str) or not isinstance(seq, int) or seq < 0:
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.unreadable += 1  # a malformed payload (a scenario's), or a stranger's
            return
        self.received += 1
        book = self.devices.get(device)
        if book is None:
            book = self.devices[device] = [0, -1, 0, 0]
        run, highest = book[0], book[1]
        extra = self.beyond.get(device)
        if seq < run or (extra is not None and seq in extra):
            book[2] += 1
            self.duplicates += 1
            return
        if seq < highest:
            book[3] += 1
        else:
            book[1] = seq
        if seq != run:
            self.beyond.setdefault(device, set()).add(seq)
            return
        run += 1
        if extra:
            while run in extra:
                extra.discard(run)
                run += 1
        book[0] = run

    def answer(self) -> dict[str, Any]:
        """What was delivered, in the read-back's format (and the order it came in)."""
        devices: dict[str, dict[str, Any]] = {}
        for device, (run, highest, duplicates, late) in self.devices.items():
            seqs = [[0, run - 1]] if run else []
            for seq in sorted(self.beyond.get(device, ())):
                if seqs and seq == seqs[-1][1] + 1:
                    seqs[-1][1] = seq
                else:
                    seqs.append([seq, seq])
            received = sum(high - low + 1 for low, high in seqs)
            devices[device] = {
                "received": received,
                "highest_seq": highest,
                "duplicates": duplicates,
                "out_of_order": late,
                "seqs": seqs,
            }
        return {
            "devices": devices,
            "received": self.unique,
            "duplicates": self.duplicates,
            "out_of_order": sum(book[3] for book in self.devices.values()),
            "rejected": self.unreadable,
        }


# The child process -----------------------------------------------------------------


def _say(out: IO[str], **line: Any) -> None:
    out.write(json.dumps(line) + "\n")
    out.flush()


async def _observe(config: dict[str, Any], out: IO[str]) -> None:
    from simulator.transports.mqtt.subscriber import MqttSubscriber

    settings = MqttSettings(**config["settings"])
    book = SeqBook()
    topic = config["filter"]
    if config["shared"]:  # the broker spreads the messages over the group's connections
        topic = f"$share/{config['group']}/{topic}"
    started = time.process_time()
    subscriber = MqttSubscriber(
        settings,
        topic,
        lambda _topic, payload, _trace: book.add(payload),
        f"{config['group']}-{config['index']}",
        qos=int(config["qos"]),
    )
    async with subscriber:
        _say(out, ready=True)
        loop = asyncio.get_running_loop()
        stopped = loop.run_in_executor(None, sys.stdin.read)  # EOF: the parent says stop
        while not stopped.done():
            await asyncio.wait([stopped], timeout=PROGRESS_EVERY)
            _say(out, received=book.unique)
    _say(out, final={**book.answer(), "cpu_s": round(time.process_time() - started, 3)})


def main() -> None:
    """``python -m simulator.transports.mqtt.observer``: see the module docstring."""
    out = sys.stdout
    try:
        config = json.loads(sys.stdin.readline())
        config["settings"] = {
            key: Path(value) if key.endswith("_file") and value else value
            for key, value in config["settings"].items()
        }
        config["settings"]["source_addresses"] = tuple(config["settings"]["source_addresses"])
        asyncio.run(_observe(config, out))
    except ConnectError as exc:
        _say(out, error=str(exc))
    except Exception as exc:  # the parent reports it as one line
        _say(out, error=f"the observer failed: {type(exc).__name__}: {exc}")


# The parent's side -----------------------------------------------------------------


class _Child:
    """One observer process: one connection, its progress and its final answer."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.received = 0
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None
        self.ready: asyncio.Future[None] | None = None
        self.final: asyncio.Future[dict[str, Any]] | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "simulator.transports.mqtt.observer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches barnstorm, which stops it
            # The final answer is one line with every device's seq ranges: tens of MB for
            # a large fleet, far past the reader's 64 KiB default.
            limit=FINAL_LIMIT,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(self.config).encode() + b"\n")
        await self.process.stdin.drain()
        loop = asyncio.get_running_loop()
        self.ready, self.final = loop.create_future(), loop.create_future()
        self.reader = asyncio.create_task(self._read(), name="barnstorm-verify-observer")

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        assert self.ready is not None
        assert self.final is not None
        async for raw in self.process.stdout:
            line = json.loads(raw)
            if "received" in line:
                self.received = int(line["received"])
            elif "ready" in line and not self.ready.done():
                self.ready.set_result(None)
            elif "final" in line and not self.final.done():
                self.final.set_result(line["final"])
            elif "error" in line:
                self._fail(ConnectError(f"--verify: {line['error']}"))
        self._fail(ConnectError("--verify: the observer stopped before it answered"))

    def _fail(self, error: Exception) -> None:
        for waiting in (self.ready, self.final):
            if waiting is not None and not waiting.done():
                waiting.set_exception(error)

    async def answer(self) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdin is not None
        assert self.final is not None
        self.process.stdin.close()  # stop
        async with asyncio.timeout(15.0):
            return await self.final

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


class Observer:
    """``async with Observer(...) as observer``: the observer's processes, subscribed when
    the block starts; :meth:`settle` waits for the run's messages and returns what arrived.

    Each process has one connection: a process of aiomqtt keeps up with about ten thousand
    messages a second on one core, so a faster run gives its observer several, on a shared
    subscription the broker spreads over them (and the answers are merged: a message that
    reached two of them counts as delivered twice; out of order is told within each)."""

    def __init__(
        self,
        settings: MqttSettings,
        topic_filter: str,
        qos: int,
        group: str,
        connections: int = 1,
    ) -> None:
        self.settings = settings
        self.topic_filter = topic_filter
        #: the QoS the run publishes at.
        self.run_qos = qos
        # At the run's QoS or higher, and never 0: a QoS 0 subscription may drop what the
        # broker delivered, and the observer's own losses must not look like the broker's.
        self.qos = max(qos, 1)
        self.group = group
        self.connections = connections
        settings_data = {
            key: str(value) if isinstance(value, Path) else value
            for key, value in dataclasses.asdict(settings).items()
        }
        self._children = [
            _Child(
                {
                    "settings": settings_data,
                    "filter": topic_filter,
                    "qos": self.qos,
                    "group": group,
                    "shared": connections > 1,
                    "index": i,
                }
            )
            for i in range(connections)
        ]

    @property
    def received(self) -> int:
        """Messages the observer received so far (each once)."""
        return sum(child.received for child in self._children)

    async def __aenter__(self) -> Observer:
        try:
            for child in self._children:
                await child.start()
            async with asyncio.timeout(READY_TIMEOUT):
                for child in self._children:
                    assert child.ready is not None
                    await child.ready
        except TimeoutError:
            await self.__aexit__()
            raise ConnectError(
                f"--verify: the observer did not subscribe to {self.settings.url} within "
                f"{READY_TIMEOUT:g}s"
            ) from None
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def settle(self, expected: int, patience: float) -> list[dict[str, Any]]:
        """Wait until the observer has ``expected`` messages, stops receiving for a second,
        or ``patience`` seconds pass; then stop it and return each process's answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        last, still_since = -1, loop.time()
        while self.received < expected and loop.time() < deadline:
            if self.received != last:
                last, still_since = self.received, loop.time()
            elif loop.time() - still_since >= 1.0:
                break
            await asyncio.sleep(0.05)
        return list(await asyncio.gather(*(child.answer() for child in self._children)))

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(child.stop() for child in self._children))


if __name__ == "__main__":
    main()

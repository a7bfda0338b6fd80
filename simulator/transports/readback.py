"""Read-back: ask a target what it stored (the reference backend's ``/api/readback``, or
any endpoint that answers the same JSON), so a run can reconcile per device and sequence
number.

The answer: ``{"received": N, "rejected": N, "devices": {device_id: {"received": N,
"duplicates": N, "seqs": [[low, high], ...]}}}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulator.errors import BarnstormError
from simulator.metrics.accounting import DeliveryTracker


class ReadBackError(BarnstormError):
    """The target could not be read back."""


@dataclass
class Stored:
    """What the target holds, as a tracker to reconcile against what was sent."""

    tracker: DeliveryTracker
    #: messages that arrived after the run stopped sending, while it waited for the target.
    late: int


async def take_mark(url: str) -> str | None:
    """Ask the target for a mark in its own time (``URL/mark``), so that the read-back at the
    end counts what arrived during this run only. None: the target has no marks (its
    read-back then covers everything it holds)."""
    import httpx  # only a run that reads back pays for importing it

    async with httpx.AsyncClient(timeout=10.0) as client:
        try:
            response = await client.get(f"{url.rstrip('/')}/mark")
        except httpx.HTTPError as exc:
            raise ReadBackError(f"read-back from {url} failed: {exc}") from None
    if response.status_code == 404:
        return None
    try:
        response.raise_for_status()
        return str(response.json()["mark"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise ReadBackError(f"read-back mark from {url} failed: {exc}") from None


async def read_back(
    url: str,
    device_ids: Sequence[str],
    *,
    expected: int,
    patience: float,
    since: str | None = None,
) -> Stored:
    """Ask ``url`` what it stored (from the mark ``since`` on), again each second until it
    holds ``expected`` messages, stops growing, or ``patience`` seconds have passed."""
    import httpx

    params = {"since": since} if since is not None else {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    data: dict[str, Any] = {}
    last = -1
    at_end: int | None = None  # what the target held when the run stopped sending
    async with httpx.AsyncClient(timeout=10.0) as client:
        while True:
            try:
                response = await client.get(url, params=params)
                response.raise_for_status()
                data = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ReadBackError(f"read-back from {url} failed: {exc}") from None
            received = int(data.get("received", 0))
            at_end = received if at_end is None else at_end
            if received >= expected or received == last or loop.time() > deadline:
                break
            last = received
            await asyncio.sleep(1.0)
    return Stored(_tracker(data, device_ids), int(data.get("received", 0)) - (at_end or 0))


def _tracker(data: dict[str, Any], device_ids: Sequence[str]) -> DeliveryTracker:
    tracker = DeliveryTracker(device_ids)
    for device_id, entry in data.get("devices", {}).items():
        index = tracker.index.get(device_id)
        if index is None:
            tracker.unexpected += int(entry.get("received", 0))
            continue
        for low, high in entry.get("seqs", []):
            for seq in range(int(low), int(high) + 1):
                tracker.record(index, seq)
        tracker.duplicated += int(entry.get("duplicates", 0))
    tracker.malformed += int(data.get("rejected", 0))
    return tracker

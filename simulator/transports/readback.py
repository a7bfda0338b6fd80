"""Read-back: ask a target what it stored (the reference backend's ``/api/readback``, or
any endpoint that answers the same JSON), so a run can reconcile per device and sequence
number.

The answer: ``{"received": N, "rejected": N, "devices": {device_id: {"received": N,
"duplicates": N, "seqs": [[low, high], ...]}}}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from simulator.errors import BarnstormError
from simulator.metrics.accounting import DeliveryTracker
from simulator.redact import redact_url


class ReadBackError(BarnstormError):
    """The target could not be read back."""


@dataclass(frozen=True)
class ReadBackTarget:
    """Where a target answers what it stored, and the bearer token it wants (if any)."""

    url: str
    token: str | None = field(default=None, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def endpoint(self) -> str:
        """The URL requests go to: with a token, without the URL's own user and password
        (an HTTP client would send those as basic auth instead of the token)."""
        if not self.token:
            return self.url
        parts = urlsplit(self.url)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()

    @property
    def mark_endpoint(self) -> str:
        """``URL/mark``, the URL's query kept."""
        parts = urlsplit(self.endpoint)
        return parts._replace(path=parts.path.rstrip("/") + "/mark").geturl()

    @property
    def shown(self) -> str:
        """The URL as messages show it (no password, no secret query value)."""
        return redact_url(self.url)


@dataclass
class Stored:
    """What the target holds, as a tracker to reconcile against what was sent."""

    tracker: DeliveryTracker
    #: messages that arrived after the run stopped sending, while it waited for the target.
    late: int


def _answer(response: Any, target: ReadBackTarget, what: str) -> dict[str, Any]:
    """The JSON object of a read-back answer, or one line saying why there is none: a
    refusal with what to do about it, or the status and the target's own reason."""
    status = response.status_code
    if status in (401, 403):
        hint = (
            "give its token with --readback-token or BARNSTORM_READBACK_TOKEN"
            if status == 401
            else "start the target with a read-back token (simulate serve --readback-token)"
        )
        raise ReadBackError(f"{what} from {target.shown} refused (HTTP {status}): {hint}")
    try:
        data = response.json()
    except ValueError:
        data = None
    if not 200 <= status < 300:
        reason = data.get("error") if isinstance(data, dict) else None
        detail = f": {str(reason)[:200]}" if reason else ""
        raise ReadBackError(f"{what} from {target.shown} failed: HTTP {status}{detail}")
    if not isinstance(data, dict):
        raise ReadBackError(f"{what} from {target.shown} failed: the answer is no JSON object")
    return data


async def take_mark(target: ReadBackTarget) -> str | None:
    """Ask the target for a mark in its own time (``URL/mark``), so that the read-back at the
    end counts what arrived during this run only. None: the target has no marks (its
    read-back then covers everything it holds)."""
    import httpx  # only a run that reads back pays for importing it

    async with httpx.AsyncClient(timeout=10.0, headers=target.headers) as client:
        try:
            response = await client.get(target.mark_endpoint)
        except httpx.HTTPError as exc:
            raise ReadBackError(f"read-back from {target.shown} failed: {exc}") from None
    if response.status_code == 404:
        return None
    mark = _answer(response, target, "read-back mark").get("mark")
    if not isinstance(mark, str | int | float):
        raise ReadBackError(f"read-back mark from {target.shown} failed: no mark in the answer")
    return str(mark)


async def read_back(
    target: ReadBackTarget,
    device_ids: Sequence[str],
    *,
    expected: int,
    patience: float,
    since: str | None = None,
) -> Stored:
    """Ask ``target`` what it stored (from the mark ``since`` on), again each second until it
    holds ``expected`` messages, stops growing, or ``patience`` seconds have passed."""
    import httpx

    params = {"since": since} if since is not None else {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    data: dict[str, Any] = {}
    last = -1
    at_end: int | None = None  # what the target held when the run stopped sending
    async with httpx.AsyncClient(timeout=10.0, headers=target.headers) as client:
        while True:
            try:
                response = await client.get(target.endpoint, params=params)
            except httpx.HTTPError as exc:
                raise ReadBackError(f"read-back from {target.shown} failed: {exc}") from None
            data = _answer(response, target, "read-back")
            received = _count(data.get("received"))
            at_end = received if at_end is None else at_end
            if received >= expected or received == last or loop.time() > deadline:
                break
            last = received
            await asyncio.sleep(1.0)
    return Stored(tracker_of(data, device_ids), _count(data.get("received")) - (at_end or 0))


def _count(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def tracker_of(
    data: dict[str, Any], device_ids: Sequence[str], tracker: DeliveryTracker | None = None
) -> DeliveryTracker:
    """A read-back answer (or one of the ``--verify`` observer's, in the same format) as a
    tracker to reconcile against what was sent; with ``tracker``, added to it (a message
    both answers hold counts as a duplicate)."""
    tracker = tracker if tracker is not None else DeliveryTracker(device_ids)
    for device_id, entry in data.get("devices", {}).items():
        index = tracker.index.get(device_id)
        if index is None:
            tracker.unexpected += int(entry.get("received", 0))
            continue
        for low, high in entry.get("seqs", []):
            if int(low) == int(tracker.contiguous[index]) and index not in tracker.beyond:
                # The run from where the device stands: booked at once, not seq by seq.
                tracker.contiguous[index] = int(high) + 1
                tracker.received += int(high) - int(low) + 1
                continue
            for seq in range(int(low), int(high) + 1):
                tracker.record(index, seq)
        tracker.duplicated += int(entry.get("duplicates", 0))
    tracker.malformed += int(data.get("rejected", 0))
    return tracker

"""What a run must have got through before it can pass.

A load test whose messages never reached the target measured nothing about the target:
such a run fails (exit 1) with one line saying why, whatever else it measured: nothing
was sent (the run ended before the connection ramp, or nothing fell due in its window),
or the target accepted none of it (a dead URL, a wrong path, a refused certificate). A
run that got through but saw more failures than ``--max-failed`` allows exits 5.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from simulator.messages import CUT_BY_DEVICE
from simulator.units import format_duration

#: what to check first, by the error kind that failed the most messages.
HINTS = {
    "http_404": "is the ingest path right? The reference backend ingests at /ingest",
    "http_405": "is the ingest path right? The reference backend ingests at /ingest",
    "http_401": "does the target want credentials? Give --token or --credentials",
    "http_403": "does the target want credentials? Give --token or --credentials",
    "connect": "is the target up, and listening at that address?",
    "dns": "is the host name right?",
    "closed": "the target closed connections during requests: is it crashing or restarting?",
    "timeout": "the target did not answer in time (--http-timeout)",
    "tls": "is its certificate signed by a CA you trust? Give --ca-file, or --insecure",
    "not_connected": "no connection to the broker stayed up",
    "rejected": "the broker closed the connection over each message: does it take this QoS "
    "(NATS refuses QoS 2), this topic and this size?",
}


def nothing_accepted(sent: int, errors: Counter[str], target: str | None) -> str:
    """One line for a run whose target accepted none of the ``sent`` messages."""
    where = f" by {target}" if target else ""
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in errors.most_common(3))
    line = f"none of the {sent:,} messages sent was accepted{where}"
    if kinds:
        line += f" ({kinds})"
    if errors:
        hint = HINTS.get(errors.most_common(1)[0][0])
        if hint:
            line += f": {hint}"
    return line


@dataclass(frozen=True)
class Ramp:
    """How far the connection ramp got, and what the run's window was."""

    connections: int  # connections the fleet of this run opens
    devices: int  # devices in this run
    started: int  # devices whose schedule started (their connection came up)
    duration: float  # simulated seconds of the run
    speed: float | None  # None: as fast as possible
    shortest_interval: float  # seconds between two messages of the chattiest kind
    #: new connections per second the ramp was paced at (None: all at once).
    connect_rate: float | None = None

    @property
    def planned(self) -> float:
        """Real seconds the ramp was planned to take."""
        return self.connections / self.connect_rate if self.connect_rate else 0.0


def nothing_sent(ramp: Ramp) -> str:
    """One line saying why a completed run sent nothing."""
    if ramp.started < ramp.devices:
        real = "" if ramp.speed is None else f" ({_real_time(ramp)} of real time)"
        head = (
            f"nothing was sent: the run ended before its devices were connected "
            f"({ramp.started:,} of {ramp.devices:,} devices had started); "
        )
        if ramp.speed is not None and ramp.planned < ramp.duration / ramp.speed:
            # The ramp had time enough on paper: connecting itself was slow.
            return head + (
                f"the ramp of {ramp.connections:,} connections was planned to take "
                f"{ramp.planned:.2f} s of the run's {_real_time(ramp)}, but connecting took "
                "longer (a busy machine or a slow target): give a longer --duration or a "
                "lower --speed"
            )
        return head + (
            f"--duration {format_duration(ramp.duration)}{real} is too short for a ramp of "
            f"{ramp.connections:,} connections: give a longer --duration or a higher "
            "--connect-rate"
        )
    return (
        f"nothing was sent: nothing fell due in the run's {format_duration(ramp.duration)} "
        f"of simulated time; the chattiest messages of this fleet come every "
        f"{format_duration(ramp.shortest_interval)}: give a longer --duration"
    )


def _real_time(ramp: Ramp) -> str:
    assert ramp.speed is not None
    seconds = ramp.duration / ramp.speed
    return f"{seconds:.1f} s" if seconds < 60 else format_duration(seconds)


@dataclass(frozen=True)
class FailedShare:
    """The ``--max-failed`` verdict: the share of sent messages the target failed."""

    failed: int
    sent: int
    limit: float  # a share, 0.01 for 1 %

    @classmethod
    def of(cls, totals: Any, limit: float) -> FailedShare:
        """From a run's totals (``Counts`` or its report dict): what its own devices cut
        off by going offline failed, but not through the target, and does not count."""
        failed, sent, errors = (
            (totals["failed"], totals["sent"], totals["errors"])
            if isinstance(totals, dict)
            else (totals.failed, totals.sent, totals.errors)
        )
        return cls(failed - int(errors.get(CUT_BY_DEVICE, 0)), sent, limit)

    @property
    def share(self) -> float:
        return self.failed / self.sent if self.sent else 0.0

    @property
    def held(self) -> bool:
        return self.share <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "failed": self.failed,
            "sent": self.sent,
            "share": round(self.share, 6),
            "limit": self.limit,
            "held": self.held,
        }


def judge_delivery(
    totals: Any, completed: bool, ramp: Ramp, target: str | None, max_failed: float
) -> tuple[str | None, FailedShare | None]:
    """Why a run fails on what it got through (None: it does not), and its --max-failed
    verdict when it got something through. Books that do not balance fail any run; the
    rest is judged only for a run that completed."""
    if totals.unaccounted:
        # barnstorm's own books do not balance: no figure of this run can be trusted.
        return (
            f"{totals.unaccounted:,} of {totals.sent:,} messages are unaccounted for: sent, "
            "but neither settled nor held by the transport (a defect in barnstorm: "
            "please report it with this report)",
            None,
        )
    if not completed:
        return None, None
    if totals.sent == 0:
        return nothing_sent(ramp), None
    if totals.acknowledged + totals.unconfirmed == 0:
        return nothing_accepted(totals.sent, totals.errors, target), None
    return None, FailedShare.of(totals, max_failed)

"""What travels from the engine through a transport to the metrics: a message and its outcome.

The shared vocabulary of the engine, the transports and the metrics, kept below all three
so that none of them has to import another for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    """What became of a message."""

    ACKNOWLEDGED = "acknowledged"  # the target confirmed it (PUBACK, PUBCOMP, 2xx, written)
    UNCONFIRMED = "unconfirmed"  # handed to the network; the protocol gives no receipt (QoS 0)
    FAILED = "failed"  # handed over, then lost or refused
    DROPPED = "dropped"  # never handed over: the connection was down


#: Why a device keeps a message and never hands it to a transport (its own simulated
#: offline state: still offline when the run stopped, or its bounded buffer overflowed).
#: Such a message is dropped on the books, but it is no failure of the target.
HELD_ON_DEVICE = frozenset({"offline_at_stop", "buffer_overflow"})

#: Why a message handed over failed through its own device: the device went offline (a
#: scenario's outage) before the broker's receipt came. In doubt, so failed, never
#: delivered; but no failure of the target either, and said apart from the target's.
CUT_BY_DEVICE = "cut_offline"

#: Every reason that is the simulated device's doing, not the target's.
DEVICE_SIDE = HELD_ON_DEVICE | {CUT_BY_DEVICE}

#: Message flags.
DUPLICATE = 1  # a resend of a message already sent (same seq): counted apart


MALFORMED = 2  # deliberately broken payload (a bad_payloads scenario)


BACKFILL = 4  # sent late from an offline device's buffer


@dataclass(slots=True)
class Message:
    """One message on its way out."""

    device: int  # fleet device index
    type_code: int  # index into the fleet's device type names
    connection: int  # fleet index of the device whose connection carries it
    kind: str
    seq: int
    topic: str
    payload: bytes
    #: real monotonic instant the schedule intended it to leave (None with --speed max).
    due: float | None
    #: real monotonic instant it was handed to the transport.
    sent_at: float = 0.0
    flags: int = 0
    #: MQTT 5 properties of its PUBLISH, encoded without their length (trace context as a
    #: user property); None for none.
    properties: bytes | None = None
    #: the ``traceparent`` it carries and the wall instant (ns) it left, when barnstorm
    #: exports its client span (``--otlp-export``); None for none.
    trace: tuple[str, int] | None = None

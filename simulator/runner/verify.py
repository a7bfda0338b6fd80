"""``--verify``: delivery judged by an independent subscriber on the broker.

The run starts the observer (:mod:`simulator.transports.mqtt.observer`) before its
devices connect, on the broker itself (never through a scenario's fault proxy), and at
its end reconciles what the observer received with what it sent, per device and sequence
number, as it does a read-back: what was acknowledged (or, at QoS 0, written) and never
delivered, delivered twice beyond the fleet's own duplicates, or delivered out of order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.fleet.topics import subscription_filter
from simulator.transports.mqtt.observer import Observer
from simulator.transports.mqtt.settings import MqttSettings
from simulator.transports.readback import tracker_of


def observer_for(
    mqtt: MqttSettings, topic_template: str, connections: int, run_id: str
) -> Observer:
    """The observer of a run publishing to ``mqtt`` with ``topic_template``."""
    return Observer(
        mqtt,
        subscription_filter(topic_template),
        mqtt.qos,
        group=f"barnstorm-verify-{run_id[:8]}",
        connections=connections,
    )


def verification(
    observed: list[dict[str, Any]],
    device_ids: Sequence[str],
    next_seq: npt.NDArray[np.int64],
    devices: Sequence[int],
    not_delivered: set[tuple[int, int]],
    *,
    qos: int,
    duplicates_out: int,
    observer: Observer,
) -> dict[str, Any]:
    """The report's ``verify`` section from what the observer's processes received
    (``qos``: the run's)."""
    tracker = None
    for answer in observed:
        tracker = tracker_of(answer, device_ids, tracker)
    assert tracker is not None
    books = tracker.reconcile(next_seq, devices, not_delivered)
    return {
        **books.as_dict(),
        # At QoS 0 nothing is acknowledged: what never arrived was only written.
        "acknowledged_not_delivered": books.lost if qos else 0,
        "delivered_twice": max(books.duplicated - duplicates_out, 0),
        "out_of_order": sum(int(answer.get("out_of_order", 0)) for answer in observed),
        "observer": {
            "qos": observer.qos,
            "connections": observer.connections,
            "topic_filter": observer.topic_filter,
            "cpu_s": round(sum(float(answer.get("cpu_s") or 0) for answer in observed), 3),
        },
    }

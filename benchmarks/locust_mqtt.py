"""Locust's own MQTT user (locust.contrib.mqtt), publishing one constant payload as hard as
it goes, or once per ``BENCH_EVERY`` seconds; the baseline of the publish and connection
benchmarks. Host, port, QoS and payload come from the environment (BENCH_*)."""

from __future__ import annotations

import os
from pathlib import Path

from locust import constant, constant_pacing, task
from locust.contrib.mqtt import MqttUser

_PAYLOAD = Path(os.environ["BENCH_PAYLOAD"]).read_bytes()
_QOS = int(os.environ.get("BENCH_QOS", "0"))
_EVERY = float(os.environ.get("BENCH_EVERY", "0"))


class Device(MqttUser):
    host = os.environ.get("BENCH_HOST", "127.0.0.1")
    port = int(os.environ.get("BENCH_PORT", "1883"))
    use_loop_selectors = True  # past 340 connections, as locust's docs say
    wait_time = constant_pacing(_EVERY) if _EVERY else constant(0)

    @task
    def publish(self) -> None:
        if self.client.is_connected():
            self.client.publish("bench/locust/cm-00001/summary", _PAYLOAD, qos=_QOS)

"""Capacity search: raise the load step by step until an SLA breaks (``simulate capacity``).

The mixed run of ``mixed.py`` with a Locust load shape: every step lasts the same time;
on each step the dashboard users grow (Locust spawns them) and, with farm growth, one
more fleet shard starts (step k runs shards 1..k of the fleet, so the devices grow by the
same number of farms each step and every farm keeps its identity). The SLAs are judged
on each step's own requests and messages, its warm-up excluded. The search stops at the
first step that breaks an SLA, or after the last step, and writes what it found to
``BARNSTORM_CAPACITY_OUT`` (JSON) for ``simulate capacity`` to report.

Configured by ``BARNSTORM_CAPACITY`` (JSON, written by ``simulate capacity``)::

    {"steps": 8, "step_seconds": 120, "warmup_seconds": 30, "users": 10, "users_step": 10,
     "spawn_rate": 10, "fleet_shards": 8, "farms_per_step": 50, "slas": ["ingest.p95<250ms"]}
"""

from __future__ import annotations

import json
import os
from typing import Any

from locust import LoadTestShape, events
from locust.env import Environment

from simulator.locust.fleet import AUTO_FLEET, start_child
from simulator.locust.run_report import SERVER_TIMINGS
from simulator.locust.stats import Snapshot, scopes_of, snapshot, window_measures
from simulator.locust.users import DashboardUser
from simulator.metrics.server_timing import ServerTimings, growth_across_steps
from simulator.metrics.sla import Measure, Sla, evaluate, parse_slas

__all__ = ["CapacityShape", "DashboardUser"]

AUTO_FLEET["enabled"] = False  # the shape starts the fleet's shards, step by step
PLAN: dict[str, Any] = json.loads(os.environ.get("BARNSTORM_CAPACITY") or "{}")


def culprit(sla: Sla, measures: dict[str, Measure], snap: Snapshot) -> dict[str, Any] | None:
    """Within a broken SLA's scope, the endpoint or device type that did worst on its metric."""
    if sla.scope not in ("ingest", "dashboard"):
        return None
    names = {
        scope
        for key in snap
        for scope in scopes_of(*key)[1:]
        if sla.scope in scopes_of(*key) and scope != sla.scope and scope in measures
    }
    if not names:
        return None
    higher_is_worse = sla.op in ("<", "<=")
    values = {name: measures[name].value(sla) for name in names if measures[name].count}
    if not values:
        return None
    worst = (max if higher_is_worse else min)(values, key=lambda name: values[name])
    return {"name": worst, "actual": round(values[worst], 3), "value": sla.describe(values[worst])}


class CapacityShape(LoadTestShape):
    """Steps of fixed duration; each judged on its own window after the warm-up."""

    use_common_options = False

    def __init__(self) -> None:
        super().__init__()
        self.slas = parse_slas(PLAN.get("slas", []))
        self.step = -1
        self.step_started = 0.0
        self.warm: Snapshot | None = None
        self.warm_at = 0.0
        self.results: list[dict[str, Any]] = []
        self.finished = False

    @property
    def environment(self) -> Any:
        assert self.runner is not None, "Locust sets the shape's runner before the first tick"
        return self.runner.environment

    def users_at(self, step: int) -> int:
        return int(PLAN["users"] + PLAN["users_step"] * step)

    def tick(self) -> tuple[int, float] | None:
        if self.finished:
            return None
        now = self.get_run_time()
        step = int(now // PLAN["step_seconds"])
        if step != self.step:
            if (self.step >= 0 and self._judge(now)) or step >= PLAN["steps"]:
                self._finish()
                return None
            self._enter(step, now)
        if self.warm is None and now - self.step_started >= PLAN["warmup_seconds"]:
            self.warm, self.warm_at = snapshot(self.environment.stats), now
            SERVER_TIMINGS.take()  # the warm-up's Server-Timing is not judged either
        return self.users_at(step), float(PLAN["spawn_rate"])

    def _enter(self, step: int, now: float) -> None:
        self.step, self.step_started, self.warm = step, now, None
        shards = int(PLAN.get("fleet_shards", 0))
        if shards and step < shards:
            start_child(self.environment, step, shards)  # one more share of the farms
        elif step == 0 and PLAN.get("constant_fleet"):
            start_child(self.environment, 0, 1)

    def _judge(self, now: float) -> bool:
        """Judge the step that just ended; True when an SLA broke."""
        after = snapshot(self.environment.stats)
        before = self.warm if self.warm is not None else {}
        seconds = max(now - (self.warm_at if self.warm is not None else self.step_started), 1e-9)
        measures = window_measures(before, after, seconds)
        verdicts = evaluate(self.slas, measures)
        broken = [v for v in verdicts if not v.held]
        farms = PLAN.get("farms_per_step", 0) * min(self.step + 1, PLAN.get("fleet_shards", 0))
        row: dict[str, Any] = {
            "step": self.step + 1,
            "users": self.users_at(self.step),
            "farms": farms or (PLAN["farms"] if PLAN.get("constant_fleet") else 0),
            "seconds_judged": round(seconds, 1),
            "held": not broken,
            "verdicts": [v.as_dict() for v in verdicts],
            "scopes": {
                scope: {
                    "requests": m.count,
                    "rate_per_s": round((m.count - m.failures) / seconds, 2),
                    "error_rate": round(m.failures / m.count, 5) if m.count else 0.0,
                    "p50_ms": m.quantile(0.5),
                    "p95_ms": m.quantile(0.95),
                    "p99_ms": m.quantile(0.99),
                }
                for scope, m in sorted(measures.items())
            },
        }
        step_timing = ServerTimings()
        step_timing.merge(SERVER_TIMINGS.take())
        row["backend"] = step_timing.summary()
        if broken:
            row["culprits"] = {v.sla.text: culprit(v.sla, measures, after) for v in broken}
        self.results.append(row)
        return bool(broken)

    def _finish(self, interrupted: bool = False) -> None:
        self.finished = True
        out = os.environ.get("BARNSTORM_CAPACITY_OUT")
        if out:
            result = {
                "plan": PLAN,
                "steps": self.results,
                "interrupted": interrupted,
                "n_plus_one": growth_across_steps(
                    [row.get("backend") or {} for row in self.results]
                ),
            }
            with open(out, "w", encoding="utf-8") as file:
                json.dump(result, file, indent=1)
        # tick() now returns None: Locust stops the test, and with it the fleet


@events.quitting.add_listener
def keep_the_steps(environment: Environment, **_: Any) -> None:
    """Stopped early (Ctrl-C, a time limit): the steps judged so far are still written."""
    shape = environment.shape_class
    if isinstance(shape, CapacityShape) and not shape.finished:
        shape._finish(interrupted=True)

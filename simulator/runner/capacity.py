"""``simulate capacity``: plan a step-load search, run it in Locust, report what held.

The steps run in a Locust process (``locustfiles/capacity.py``: a load shape for the users,
one more fleet shard per step for the devices, each step judged on its own window after
its warm-up). This module checks the options, writes the plan, starts Locust and turns its
step results into the table and the answer: the last load that held, and what broke
first (which SLA, and which endpoint or device type did worst on it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from simulator.errors import ConfigError
from simulator.exitcodes import EXIT_FAILED, EXIT_OK, EXIT_SLA
from simulator.metrics.sla import parse_slas
from simulator.report.files import write_report
from simulator.report.tables import folded, log_console
from simulator.resources import shipped
from simulator.traces.context import RUN_ID_VARIABLE, current_run_id
from simulator.units import parse_duration, parse_speed

LOCUSTFILE = shipped("locustfiles") / "capacity.py"


def plan(options: dict[str, Any]) -> dict[str, Any]:
    """The search's plan from the command's options; bad input names the flag."""
    try:
        step = parse_duration(options["step_time"])
    except ValueError as exc:
        raise ConfigError("--step", str(exc)) from None
    try:
        warmup = parse_duration(options["warmup"])
    except ValueError as exc:
        raise ConfigError("--warmup", str(exc)) from None
    if not 0 <= warmup < step:
        raise ConfigError("--warmup", f"expected less than the step ({options['step_time']})")
    try:
        parse_speed(options["speed"])
    except ValueError as exc:
        raise ConfigError("--speed", str(exc)) from None
    if options["farms"] and options["farms_step"]:
        raise ConfigError("--farms-step", "give a constant --farms or a growing --farms-step")
    if options["mqtt"] and options["http"]:
        raise ConfigError("--http", "give one target: --mqtt or --http")
    target = bool(options["mqtt"] or options["http"])
    if options["farms_step"] and not target:
        raise ConfigError("--farms-step", "devices need a target: give --mqtt or --http")
    devices = target and bool(options["farms"] or options["farms_step"])
    if not (options["users"] or options["users_step"] or devices):
        raise ConfigError("--users", "nothing to load: give users or farms")
    if not (options["users_step"] or options["farms_step"]):
        raise ConfigError("--users-step", "nothing grows: give --users-step or --farms-step")
    slas = parse_slas(options["sla"])
    steps = options["steps"]
    return {
        "steps": steps,
        "step_seconds": step,
        "warmup_seconds": warmup,
        "users": options["users"],
        "users_step": options["users_step"],
        "spawn_rate": options["spawn_rate"],
        "farms": options["farms"],
        "constant_fleet": devices and bool(options["farms"]),
        "farms_per_step": options["farms_step"],
        "fleet_shards": steps if options["farms_step"] else 0,
        "slas": [sla.text for sla in slas],
    }


def run_capacity(options: dict[str, Any], locust_args: list[str]) -> int:
    """Run the search in Locust and report; the exit code of ``simulate capacity``."""
    search = plan(options)
    fleet_farms = search["farms"] or search["farms_per_step"] * search["steps"]
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "steps.json"
        env = {
            **os.environ,
            "BARNSTORM_CAPACITY": json.dumps(search),
            "BARNSTORM_CAPACITY_OUT": str(out),
            "BARNSTORM_FARMS": str(max(fleet_farms, 1)),
            "BARNSTORM_SEED": str(options["seed"]),
            "BARNSTORM_SPEED": options["speed"],
            RUN_ID_VARIABLE: current_run_id(),
        }
        for name in ("BARNSTORM_SLA", "BARNSTORM_JUNIT", "BARNSTORM_LOCUST_SLAS"):
            env.pop(name, None)
        if options["mqtt"]:
            env["BARNSTORM_MQTT"] = options["mqtt"]
        if options["http"]:
            env["BARNSTORM_HTTP"] = options["http"]
        ceiling = search["steps"] * search["step_seconds"] + 120  # the shape ends it first
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
        command += ["--host", options["host"], "-t", f"{int(ceiling)}s", "--only-summary"]
        locust = subprocess.call([*command, *locust_args], env=env)
        if not out.exists():
            console.print(f"simulate capacity: Locust ended (exit {locust}) before any step")
            return EXIT_FAILED
        result = json.loads(out.read_text())
    result["answer"] = answer(result["steps"], search)
    if options["report"] is not None:
        write_report(result, options["report"])
    print_steps(result, log_console(sys.stdout))
    if not result["steps"] or not result["steps"][0]["held"]:
        return EXIT_SLA
    return EXIT_OK


def answer(steps: list[dict[str, Any]], search: dict[str, Any]) -> dict[str, Any]:
    """The last load that held, and the first step that broke with why."""
    held = [step for step in steps if step["held"]]
    broke = next((step for step in steps if not step["held"]), None)
    last = held[-1] if held else None
    reason = None
    if broke is not None:
        reason = [
            {
                "sla": verdict["sla"],
                "detail": verdict["detail"],
                "worst": (broke.get("culprits") or {}).get(verdict["sla"]),
            }
            for verdict in broke["verdicts"]
            if not verdict["held"]
        ]
    return {
        "last_held": None if last is None else {k: last[k] for k in ("step", "users", "farms")},
        "broke_at": None if broke is None else {k: broke[k] for k in ("step", "users", "farms")},
        "broken": reason,
        "ceiling_reached": broke is None and len(steps) == search["steps"],
    }


def print_steps(result: dict[str, Any], console: Console) -> None:
    """The table of every step, then the answer."""
    steps = result["steps"]
    kinds = [k for k in ("ingest", "dashboard") if any(k in step["scopes"] for step in steps)]
    headers = ["step", "users", "farms", *(f"{k} {m}" for k in kinds for m in ("/s", "p95"))]
    headers += ["errors", "verdict"]
    rows = []
    for step in steps:
        scopes = [step["scopes"].get(kind, {}) for kind in kinds]
        failed = sum(s.get("error_rate", 0) * s.get("requests", 0) for s in scopes)
        requests = sum(s.get("requests", 0) for s in scopes)
        figures = []
        for scope in scopes:
            figures += [f"{scope.get('rate_per_s', 0):,.1f}", f"{scope.get('p95_ms', 0):,.0f} ms"]
        rows.append(
            [
                str(step["step"]),
                str(step["users"]),
                str(step["farms"]),
                *figures,
                f"{failed / requests * 100:.2f} %" if requests else "-",
                "[green]held[/]" if step["held"] else "[bold red]broke[/]",
            ]
        )
    for table in folded(headers, rows, console.width, title="capacity search"):
        console.print(table)
    found = result["answer"]
    if found["last_held"] is not None:
        last = found["last_held"]
        console.print(
            f"[green]last load that held:[/] step {last['step']}: {last['users']} users, "
            f"{last['farms']} farms"
        )
    else:
        console.print("[bold red]no step held[/]: even the first load broke the SLAs")
    if found["broke_at"] is not None:
        for broken in found["broken"]:
            worst = broken["worst"]
            where = f"; worst: {worst['name']} at {worst['value']}" if worst else ""
            console.print(
                f"[bold red]broke at step {found['broke_at']['step']}:[/] "
                + escape(broken["detail"] + where)
            )
    elif found["ceiling_reached"]:
        console.print("held at every step up to the ceiling (--steps): raise it to look further")
    for suspect in result.get("n_plus_one") or []:
        console.print(
            f"[bold red]N+1 suspected in {escape(suspect['name'])}:[/] {escape(suspect['why'])}"
        )
    if result.get("interrupted"):
        console.print("[yellow]the search was stopped early: these are the steps judged so far[/]")

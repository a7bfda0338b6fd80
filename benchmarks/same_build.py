"""Does the gate cry wolf on real runs? Pairs of mixed runs of one build, compared both ways.

The reference backend (its own database, two weeks of ten farms' history), then
``simulate mixed`` for ``minutes`` each, six times in a row: 10 dashboard users with the
shipped map (think times 2-15 s), the devices over HTTP ingest. Runs 1-2, 3-4 and 5-6 are
compared in both directions with ``simulate compare``'s default rules (six comparisons),
and the sixth against the five before it: every one should exit 0. (About 15 minutes;
asked for by name, not part of ``all``.)

    python -m benchmarks same-build
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .common import ROOT, SIMULATE

FARMS = 10
USERS = 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the reference backend exited at start")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("the reference backend did not listen")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIMULATE, *args], cwd=ROOT, capture_output=True, text=True, timeout=3600
    )


def bench_same_build(minutes: float = 2.0, runs: int = 6) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        backend = subprocess.Popen(
            [*SIMULATE, "serve", "--port", str(port), "--database", str(folder / "db.sqlite")],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port, backend)
            start = (datetime.now(UTC) - timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
            seeded = _run(
                *("--farms", str(FARMS), "--http", f"{url}/ingest", "--http-batch", "200"),
                *("--speed", "max", "--start", start, "--duration", "14d", "--quiet"),
            )
            if seeded.returncode != 0:
                raise RuntimeError(f"seeding failed: {seeded.stderr[-500:]}")
            reports = []
            run_codes = []
            for number in range(1, runs + 1):
                report = folder / f"run-{number}.json"
                done = _run(
                    *("mixed", "--farms", str(FARMS), "--users", str(USERS)),
                    *("--spawn-rate", "2", "--run-time", f"{int(minutes * 60)}s"),
                    *("--host", url, "--http", f"{url}/ingest", "--report", str(report)),
                )
                run_codes.append(done.returncode)
                reports.append(report)
                print(f"  run {number}: exit {done.returncode}", flush=True)
                if done.returncode:
                    print(done.stderr[-3000:], flush=True)
            comparisons: list[dict[str, Any]] = []
            pairs = [(reports[i], reports[i + 1]) for i in range(0, runs - 1, 2)]
            for first, second in pairs:
                for baseline, current in ((first, second), (second, first)):
                    comparisons.append(_compare([baseline], current))
            comparisons.append(_compare(reports[:-1], reports[-1]))
            requests = [
                sum(r["requests"] for r in json.loads(p.read_text())["requests"])
                if p.exists()
                else None
                for p in reports
            ]
        finally:
            backend.terminate()
            backend.wait(30)
    return {
        "name": "same-build",
        "what": f"{runs} mixed runs of {minutes:g} min of one build ({USERS} users, {FARMS} "
        "farms, two weeks of history), compared in pairs both ways and the last against "
        "the rest",
        "run_exit_codes": run_codes,
        "requests_per_run": requests,
        "comparisons": [c["what"] for c in comparisons],
        "compare_exit_codes": [c["code"] for c in comparisons],
        "false_alarms": sum(1 for c in comparisons if c["code"] != 0),
        "broken": [line for c in comparisons for line in c["broken"]],
    }


def _compare(baselines: list[Path], current: Path) -> dict[str, Any]:
    done = _run("compare", *map(str, baselines), str(current), "--json")
    data = json.loads(done.stdout) if done.stdout.startswith("{") else {}
    names = ", ".join(p.stem for p in baselines)
    return {
        "what": f"{current.stem} against {names}",
        "code": done.returncode,
        "broken": data.get("summary", []) or ([done.stderr.strip()] if done.returncode else []),
    }


if __name__ == "__main__":
    for key, value in bench_same_build().items():
        print(f"{key}: {value}")

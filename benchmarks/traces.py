"""What receiving the backend's spans costs a mixed run: the docs' mixed example (500
farms, 200 dashboard users, real time) for a minute against the reference backend, which
exports its spans (``simulate serve --otlp``: every request and query a span) to the run's
``--otlp-receiver``.

barnstorm's figure: the receiver process's CPU seconds (it reports its own). The baseline:
the CPU seconds of the whole mixed run it was part of (Locust, its users, the fleet
process and the receiver, measured by ``wait4``). The ratio is the receiver's share, to
stay under 10 %.

    python -m benchmarks traces
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .common import ROOT, SIMULATE, check, run_measured
from .same_build import _free_port, _wait_listening

FARMS, USERS, SECONDS = 500, 200, 60


def bench_traces(seconds: int = SECONDS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        port, otlp = _free_port(), _free_port()
        url = f"http://127.0.0.1:{port}"
        backend = subprocess.Popen(
            [
                *(*SIMULATE, "serve", "--port", str(port), "--farms", str(FARMS)),
                *("--database", str(folder / "db.sqlite"), "--otlp", f"http://127.0.0.1:{otlp}"),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port, backend)
            report = folder / "mixed.json"
            run = check(
                run_measured(
                    [
                        *(*SIMULATE, "mixed", "--farms", str(FARMS), "--users", str(USERS)),
                        *("--spawn-rate", "20", "--run-time", f"{seconds}s"),
                        *("--host", url, "--http", f"{url}/ingest"),
                        *("--otlp-receiver", f"127.0.0.1:{otlp}", "--report", str(report)),
                    ],
                    timeout=seconds + 300,
                ),
                "the mixed run",
            )
            data = json.loads(report.read_text())
        finally:
            backend.terminate()
            backend.wait(30)
    traces = data["traces"] or {}
    spans = traces.get("spans") or {}
    receiver = float(traces.get("receiver_cpu_s") or 0.0)
    requests = sum(r["requests"] for r in data["requests"])
    return {
        "name": "traces",
        "what": f"mixed run of {FARMS} farms (HTTP ingest) and {USERS} users for {seconds} s, "
        "the reference backend exporting every span to its --otlp-receiver",
        "requests": requests,
        "spans_received": spans.get("received"),
        "spans_joined": spans.get("joined"),
        "barnstorm": {"receiver_cpu_s": round(receiver, 2)},
        "baseline": {"mixed_run_cpu_s": round(run.cpu_s, 2)},
        "ratio": round(receiver / run.cpu_s, 4) if run.cpu_s else None,
        "goal": "ratio < 0.10",
    }


if __name__ == "__main__":
    for key, value in bench_traces().items():
        print(f"{key}: {value}")

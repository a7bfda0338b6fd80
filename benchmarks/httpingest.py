"""HTTP ingest: barnstorm's HTTP transport (httpx) against the reference backend's
``/ingest``, beside ``wrk`` on the same endpoint: wrk's rate is the backend's ceiling."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from simulator.backend.broker import free_port

from .common import SIMULATE, check, ratio, run_measured, sample_payload


def _serve(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    backend = subprocess.Popen(
        [*SIMULATE, "serve", "--port", str(port), "--database", str(folder / "backend.db")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            import httpx

            if httpx.get(f"{url}/api/farms", timeout=1.0).status_code < 500:
                return backend, url
        except httpx.HTTPError:
            time.sleep(0.1)
    backend.kill()
    raise SystemExit("benchmark: the reference backend did not start")


def _wrk(url: str, body: bytes, folder: Path, seconds: int) -> tuple[float, int]:
    """wrk's requests per second and its non-2xx responses, POSTing ``body``."""
    script = folder / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("benchmark: wrk is not installed (scripts/setup installs it)")
    out = subprocess.run(
        [wrk, "-t1", "-c32", f"-d{seconds}s", "-s", str(script), f"{url}/ingest"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(bad.group(1)) if bad else 0


def bench_http(farms: int = 20, duration: str = "4h", wrk_seconds: int = 10) -> dict[str, Any]:
    """Requests per second and per CPU-second of barnstorm's HTTP ingest at speed max (one
    message per request), vs. wrk's requests per second on the same endpoint."""
    with tempfile.TemporaryDirectory(prefix="barnstorm-http-") as name:
        folder = Path(name)
        backend, url = _serve(folder)
        try:
            report = folder / "report.json"
            result = check(
                run_measured(
                    [
                        *(*SIMULATE, "--farms", str(farms), "--http", f"{url}/ingest"),
                        *("--speed", "max", "--duration", duration, "--start", "2026-01-01"),
                        *("--connect-rate", "0", "--quiet", "--report", str(report)),
                        "--allow-loss",
                    ]
                ),
                "barnstorm over HTTP",
            )
            data = json.loads(report.read_text())
            totals = data["totals"]
            sample = sample_payload(folder, "climate_node").read_bytes()
            wrk_rate, wrk_bad = _wrk(url, sample, folder, wrk_seconds)
        finally:
            backend.terminate()
            backend.wait(10)
    # Delivered requests only: a failed or dropped message is not throughput.
    ours_rate = totals["acknowledged"] / data["time"]["wall_seconds"]
    return {
        "name": "http-ingest",
        "what": f"{totals['sent']:,} requests (one message each) of {farms} farms over "
        f"{duration} at speed max to the reference backend's /ingest",
        "barnstorm_req_per_s": round(ours_rate),
        "barnstorm_req_per_cpu_s": round(totals["acknowledged"] / result.cpu_s),
        "barnstorm_accounted": f"{totals['acknowledged']:,} acknowledged, "
        f"{totals['failed']} failed, {totals['dropped']} dropped",
        "baseline": "wrk, 1 thread, 32 connections, the same endpoint (the backend's ceiling)",
        "baseline_req_per_s": round(wrk_rate),
        "baseline_non_2xx": wrk_bad,
        "ratio": ratio(ours_rate, wrk_rate),
        "python": sys.version.split()[0],
    }

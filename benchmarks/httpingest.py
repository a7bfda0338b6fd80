"""HTTP ingest: barnstorm's HTTP transport against the reference backend's ``/ingest``,
with its default client (aiohttp) beside the same run over httpx (the client it used
before, still there for HTTP/2), and ``wrk`` on the same endpoint: wrk's rate is the
backend's ceiling."""

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
    """Requests per CPU-second of barnstorm's HTTP ingest at speed max (one message per
    request) with each client, and wrk's requests per second on the same endpoint."""
    with tempfile.TemporaryDirectory(prefix="barnstorm-http-") as name:
        folder = Path(name)
        backend, url = _serve(folder)
        try:
            report = folder / "report.json"

            def barnstorm(client: str) -> tuple[float, dict[str, Any]]:
                """(acknowledged per CPU-second, the report) of one run over ``client``."""
                result = check(
                    run_measured(
                        [
                            *(*SIMULATE, "--farms", str(farms), "--http", f"{url}/ingest"),
                            *("--speed", "max", "--duration", duration, "--start", "2026-01-01"),
                            *("--connect-rate", "0", "--quiet", "--report", str(report)),
                            *("--http-client", client, "--allow-loss"),
                        ]
                    ),
                    f"barnstorm over HTTP ({client})",
                )
                data = json.loads(report.read_text())
                return data["totals"]["acknowledged"] / result.cpu_s, data

            ours_per_cpu, data = barnstorm("aiohttp")
            httpx_per_cpu, httpx_data = barnstorm("httpx")
            sample = sample_payload(folder, "climate_node").read_bytes()
            wrk_rate, wrk_bad = _wrk(url, sample, folder, wrk_seconds)
        finally:
            backend.terminate()
            backend.wait(10)
    totals = data["totals"]
    # Delivered requests only: a failed or dropped message is not throughput.
    ours_rate = totals["acknowledged"] / data["time"]["wall_seconds"]
    return {
        "name": "http-ingest",
        "what": f"{totals['sent']:,} requests (one message each) of {farms} farms over "
        f"{duration} at speed max to the reference backend's /ingest",
        "barnstorm_req_per_cpu_s": round(ours_per_cpu),
        "barnstorm_req_per_s": round(ours_rate),
        "barnstorm_accounted": f"{totals['acknowledged']:,} acknowledged, "
        f"{totals['failed']} failed, {totals['dropped']} dropped (aiohttp, the default client)",
        "baseline": "the same run over httpx (--http-client httpx, the client before; "
        f"{httpx_data['totals']['acknowledged']:,} acknowledged); wrk, 1 thread, "
        "32 connections, the same endpoint (the backend's ceiling)",
        "baseline_req_per_cpu_s": round(httpx_per_cpu),
        "baseline_wrk_req_per_s": round(wrk_rate),
        "baseline_wrk_non_2xx": wrk_bad,
        "ratio": ratio(ours_per_cpu, httpx_per_cpu),
        "goal": ">= 2",
        "ratio_of_rate_to_wrk": ratio(ours_rate, wrk_rate),
        "python": sys.version.split()[0],
    }

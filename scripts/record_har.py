"""Record a browser session on the reference backend's dashboards as a HAR file.

    .venv/bin/pip install playwright        # not a barnstorm dependency: only for this script
    apt-get install chromium                # or: .venv/bin/playwright install chromium
    .venv/bin/python scripts/record_har.py tests/data/dashboard_session.har

It starts the reference backend (``simulate serve``) on a free loopback port, seeds it with
two days of two farms, and drives headless Chromium through a farmer's session: log in,
farm list, a farm, a room's 7-day chart, a device, the alerts page and acknowledging one,
back to the farm list and a second farm. The HAR (response bodies embedded) is what
``simulate har2map`` turns into a dashboard map; ``tests/test_har2map.py`` uses the
recording this script made.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
THINK_MS = 1200  # a person reading the page before the next click


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_backend(folder: Path, farms: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    serve = ["serve", "--port", str(port), "--farms", str(farms)]
    database = ["--database", str(folder / "backend.db")]
    process = subprocess.Popen([sys.executable, "-m", "simulator", *serve, *database], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/api/readback", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("record_har: the reference backend did not start")


def seed(url: str, farms: int) -> None:
    start = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    target = ["--farms", str(farms), "--http", f"{url}/ingest", "--http-batch", "100"]
    timing = ["--speed", "max", "--start", start, "--duration", "2d"]
    scenario = ["--scenario", "scenarios/heatwave.toml", "--quiet"]
    subprocess.run(
        [sys.executable, "-m", "simulator", *target, *timing, *scenario], cwd=ROOT, check=True
    )


def record(url: str, har: Path, browser_path: str | None) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path)
        context = browser.new_context(record_har_path=str(har), record_har_content="embed")
        page = context.new_page()

        def click(selector: str) -> None:
            page.locator(selector).first.click()
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(THINK_MS)

        page.goto(f"{url}/dashboard/farms")
        page.wait_for_url("**/dashboard/login")
        page.fill("input[name=password]", "barnstorm")
        page.click("button")
        page.wait_for_url("**/dashboard/farms")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(THINK_MS)
        click("main li a")  # a farm
        click("main li a")  # a room of it: the 7-day chart
        click("main li a")  # a device in that room
        click("header a[href='/dashboard/alerts']")
        click("main button[data-id]")  # acknowledge an alert
        click("header a[href='/dashboard/farms']")
        click("main li:nth-child(2) a")  # the second farm
        context.close()
        browser.close()


def login_answer_recorded(har: Path) -> bool:
    """Browsers may drop a body when the page navigates away at once, as after the login."""
    entries = json.loads(har.read_text())["log"]["entries"]
    return any(
        e["request"]["url"].endswith("/api/login") and e["response"]["content"].get("text")
        for e in entries
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("har", type=Path, help="HAR file to write")
    parser.add_argument("--farms", type=int, default=2)
    parser.add_argument("--browser", default=shutil.which("chromium"), help="Chromium binary")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_backend(Path(folder), args.farms)
        try:
            seed(url, args.farms)
            for _ in range(3):
                record(url, args.har, args.browser)
                if login_answer_recorded(args.har):
                    break
                print("record_har: the login answer was not captured; recording again")
        finally:
            process.terminate()
            process.wait(timeout=10)
    print(f"record_har: wrote {args.har} ({os.path.getsize(args.har):,} bytes)")


if __name__ == "__main__":
    main()

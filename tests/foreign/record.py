"""Record a person's session on the foreign app's dashboards as a HAR file, with a real
headless Chromium driven by Playwright:

    python -m tests.foreign.record --url http://127.0.0.1:8765 --har session.har

Sign in on the log-in page (the CSRF cookie, then the cookie login), the list of sites, a
site (its pens and weather), acknowledge it, back to the list and a second site. The HAR
(answers embedded) is what ``simulate har2map`` turns into a map of this app; the login's
user and secret come from ``--user``/``--secret`` (default: the app's manager).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tests.foreign.server import SECRET, USER

#: a person reading the page before the next click, milliseconds.
THINK_MS = 400
#: Chromium on a machine with no outside network: nothing but the page.
QUIET_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_path() -> str:
    """Chromium of the system (Debian's ``chromium``), or the error that says so."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("record: no Chromium found (apt-get install chromium)")


def record(url: str, har: Path, user: str = USER, secret: str = SECRET) -> None:
    """Drive the app's pages in headless Chromium and write the session to ``har``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=browser_path(),
            headless=True,
            args=QUIET_FLAGS,
            record_har_path=str(har),
            record_har_content="embed",
        )
        page = browser.new_page()

        def settle() -> None:
            page.wait_for_selector("body[data-ready=yes]")
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(THINK_MS)

        page.goto(f"{url}/app/login/")
        page.fill("input[name=user]", user)
        page.fill("input[name=secret]", secret)
        page.wait_for_timeout(THINK_MS)
        page.click("button[type=submit]")
        page.wait_for_url("**/app/sites/")
        settle()
        page.locator("#sites li a").nth(0).click()
        page.wait_for_url("**/app/sites/*/")
        settle()
        with page.expect_response("**/ack/"):
            page.click("#ack")
        page.wait_for_timeout(THINK_MS)
        page.click("#home")
        page.wait_for_url("**/app/sites/")
        settle()
        page.locator("#sites li a").nth(1).click()
        page.wait_for_url("**/app/sites/*/")
        settle()
        browser.close()  # writes the HAR


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the app's address")
    parser.add_argument("--har", type=Path, required=True, help="HAR file to write")
    parser.add_argument("--user", default=USER)
    parser.add_argument("--secret", default=SECRET)
    args = parser.parse_args(argv)
    record(args.url, args.har, args.user, args.secret)
    print(f"record: wrote {args.har} ({args.har.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()

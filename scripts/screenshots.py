"""Take the README's console pictures from a running demo, in headless Chromium.

    python scripts/screenshots.py [OUT]      # default docs/

Runs `banyan demo` in a scratch folder until its gateway serves the console, logs in with the demo's
admin key, and saves the route × entity matrix (console.png), each entity's business SLOs
(console-slos.png) and the page of ACME-US's stock reads: its charts, its history and the fields
it differs on (console-mismatches.png). Then stops the demo
with Ctrl-C.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=REPO / "docs")
    out: Path = parser.parse_args().out
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch:
        demo = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "demo", str(Path(scratch) / "demo")],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert demo.stdout is not None
        console = None
        for line in demo.stdout:
            if match := re.match(r"console\s+(http://\S+)", line):
                console = match.group(1)
            if "Ctrl-C to stop" in line:
                break
        if console is None:
            raise SystemExit("the demo ended before it served the console")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(console)
                page.fill("#key", "demo-admin-key")
                page.fill("#actor", "Ana Lead")
                page.click("#login button[type=submit]")
                cell = page.locator('td[data-route="inventory-availability"][data-entity="ACME-US"] button.cell')
                cell.wait_for()
                page.wait_for_timeout(3500)  # one refresh with the trickle's evidence
                page.locator("main > section").first.screenshot(path=str(out / "console.png"))
                page.locator("#slos tbody tr").first.wait_for()
                page.locator('section[aria-labelledby="slo-title"]').screenshot(path=str(out / "console-slos.png"))
                cell.click()
                page.locator("#fields").filter(has_text="/available").wait_for()
                page.locator("#charts figure").first.wait_for()
                page.locator("#cell").screenshot(path=str(out / "console-mismatches.png"))
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(60)
    print(f"wrote {out / 'console.png'}, {out / 'console-slos.png'} and {out / 'console-mismatches.png'}")


if __name__ == "__main__":
    main()

"""Shared test helpers: where the public corpora are, and how a missing service is reported."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("BANYAN_CORPORA", REPO.parent / "shared" / "corpora"))


def missing_service(reason: str) -> None:
    """Skip with the reason on a developer's machine; under CI=true a missing service is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="session")
def corpora() -> Path:
    if not (CORPORA / "filedrop" / "SOURCES.tsv").is_file():
        missing_service(f"the public sample corpora are not at {CORPORA} (set BANYAN_CORPORA)")
    return CORPORA


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium, driven by playwright; per module, as playwright's sync API keeps an
    event loop running in this thread until it stops, and other tests start their own."""
    if not Path(CHROMIUM).exists():
        missing_service("Debian's chromium is not installed (make test installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("playwright (in the test extra) is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()

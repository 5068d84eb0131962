"""A real browser for the dashboard's tests: Debian's chromium, driven by Playwright.

Playwright cannot download its own browser build here, so it launches the system's
``/usr/bin/chromium``, installing Debian's package when it is missing and failing (never
skipping) when that is impossible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, sync_playwright


def chromium_path() -> str:
    """The system chromium, installed if missing."""
    found = shutil.which("chromium")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is required for the browser tests (apt-get install chromium)")
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless chromium; closed (by Playwright, which owns its process) on exit."""
    with sync_playwright() as playwright:
        # the sandbox needs user namespaces that root in a container may not get
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()

"""The dashboard in a real browser (Debian's chromium via Playwright), against a real
gateway, Redis and Celery worker: sign in, filter with htmx, follow a job's live output,
kill it, and look at the admin's pages. Screenshots of each view are written to the
test's directory, and to ``docs/dashboard/`` when PICLOUD_SCREENSHOTS=docs.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, expect

from picloud_compat.errors import UnknownJobError
from tests import jobfuncs as jf
from tests.conftest import ADMIN_PASSWORD
from tests.dashboard.browser import chromium

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    """Where screenshots go; copied into docs/ on request once the test has passed."""
    directory = tmp_path / "screenshots"
    directory.mkdir()
    yield directory
    if os.environ.get("PICLOUD_SCREENSHOTS") == "docs":
        DOCS.mkdir(parents=True, exist_ok=True)
        for shot in directory.glob("*.png"):
            shutil.copy(shot, DOCS / shot.name)


def sign_in(page: Page, base: str, api_key: str, secret: str) -> None:
    page.goto(f"{base}/dashboard/jobs")
    expect(page).to_have_url(re.compile(r"/dashboard/login$"))
    page.fill("#api_key", api_key)
    page.fill("#secret", secret)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/dashboard/jobs$"))


def test_a_tenant_works_with_its_jobs_in_a_browser(gateway, account, shots: Path) -> None:  # type: ignore[no-untyped-def]
    api_key, secret, client = account
    squares = client.map(jf.square, range(12), _label="render")
    failed = client.call(jf.fail, "bad pixel", _label="render")
    client.join(squares)
    client.join(failed, ignore_errors=True)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        # the pages work under their Content-Security-Policy: the browser reports none
        # of its refusals (an inline script or style would be one)
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "Security Policy" in m.text else 0)
        page.goto(f"{gateway.url}/dashboard/login")
        page.screenshot(path=shots / "login.png")
        page.fill("#api_key", api_key)
        page.fill("#secret", "not the secret")
        page.click("button[type=submit]")
        expect(page.get_by_role("alert")).to_contain_text("Invalid API key or secret")
        sign_in(page, gateway.url, api_key, secret)
        expect(page.get_by_test_id("viewer")).to_have_text(f"API key {api_key}")
        expect(page.locator("tr[data-jid]")).to_have_count(13)
        page.screenshot(path=shots / "jobs.png", full_page=True)

        # the filter form swaps the table in place (htmx) and keeps the URL shareable
        page.select_option("select[name=status]", "error")
        page.click("form.filters button[type=submit] >> nth=0")
        expect(page.locator("tr[data-jid]")).to_have_count(1)
        expect(page).to_have_url(re.compile(r"status=error"))
        page.click(f"tr[data-jid='{failed}'] a")
        expect(page.get_by_test_id("status")).to_have_text("error")
        expect(page.get_by_test_id("exception")).to_contain_text("ValueError: bad pixel")
        page.screenshot(path=shots / "job-error.png", full_page=True)

        # live output: lines appear while the job runs, without reloading the page
        running = client.call(jf.chatty, 400, 0.05, _label="live")
        page.goto(f"{gateway.url}/dashboard/jobs/{running}")
        expect(page.get_by_test_id("stdout")).to_contain_text("line 5", timeout=20_000)
        expect(page.get_by_test_id("stdout")).to_contain_text("line 30", timeout=20_000)
        page.screenshot(path=shots / "job-live-output.png", full_page=True)
        page.get_by_test_id("kill").click()
        expect(page.get_by_test_id("status")).to_have_text("killed", timeout=20_000)
        assert client.status(running) == "killed"

        # deleting asks first (dashboard.js): dismissed, nothing is sent
        questions: list[str] = []
        accept = False

        def answer(dialog: Dialog) -> None:
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.on("dialog", answer)
        page.get_by_test_id("delete").click()
        expect(page.get_by_test_id("status")).to_have_text("killed")
        assert questions == [f"Delete job {running} and its result?"]
        assert client.status(running) == "killed"
        accept = True
        page.get_by_test_id("delete").click()
        expect(page).to_have_url(re.compile(r"/dashboard/jobs$"))
        with pytest.raises(UnknownJobError):
            client.status(running)

        page.goto(f"{gateway.url}/dashboard/workers")
        expect(page.get_by_test_id("queues")).to_contain_text("c1")
        page.goto(f"{gateway.url}/dashboard/usage")
        expect(page.get_by_test_id("usage")).to_contain_text(time.strftime("%Y-%m-%d"))
        assert refused == []


def test_the_admin_pages_in_a_browser(gateway, account, shots: Path) -> None:  # type: ignore[no-untyped-def]
    api_key, _, client = account
    client.join(client.map(jf.square, range(3), _label="for-admin"))
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        sign_in(page, gateway.url, "admin", ADMIN_PASSWORD)
        expect(page.get_by_test_id("viewer")).to_have_text("admin")
        page.get_by_role("link", name=api_key, exact=True).click()
        expect(page.locator("tr[data-jid]")).to_have_count(3)
        expect(page.get_by_test_id("viewer")).to_contain_text(f"viewing key {api_key}")
        page.goto(f"{gateway.url}/dashboard/workers")
        expect(page.get_by_test_id("workers")).to_contain_text("c1")
        page.screenshot(path=shots / "workers.png", full_page=True)
        page.goto(f"{gateway.url}/dashboard/usage")
        expect(page.get_by_test_id("usage")).to_contain_text(api_key)
        page.screenshot(path=shots / "usage.png", full_page=True)
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/dashboard/login$"))
        page.goto(f"{gateway.url}/dashboard/jobs")
        expect(page).to_have_url(re.compile(r"/dashboard/login$"))

"""The job dashboard over real HTTP: a real gateway process, Redis and Celery worker.

Each tenant signs in with its own key and secret and is attacked with the other's
jids, keys and forms; the admin sees every key. The browser itself is driven in
`test_dashboard_browser.py`; paging a million jobs and an unreachable store are in
`test_dashboard_scale.py`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from picloud_compat.accounts import AccountRegistry
from picloud_compat.client import session as clients
from picloud_compat.client.jobs import Client
from picloud_compat.settings import Settings
from picloud_compat.store.redis import RedisStore
from tests import jobfuncs as jf
from tests.conftest import ADMIN_PASSWORD
from tests.dashboard.session import DashboardSession, listed_jids, text

pytestmark = [pytest.mark.timeout(180), pytest.mark.cluster]


class Tenant:
    def __init__(self, api_key: str, secret: str, client: Client) -> None:
        self.api_key = api_key
        self.secret = secret
        self.client = client


@pytest.fixture
def tenants(cluster_settings: Settings, worker) -> Iterator[list[Tenant]]:  # type: ignore[no-untyped-def]
    """Two fresh API keys, each with a cluster client acting as it."""
    store = RedisStore.from_url(cluster_settings.server_url or "", cluster_settings)
    registry = AccountRegistry(store, cluster_settings)
    made = []
    for note in ("dash-a", "dash-b"):
        api_key, secret = registry.create_key(note)
        client = clients.cluster_client(
            cluster_settings.replace(gateway_url="http://unused"), api_key
        )
        made.append(Tenant(api_key, secret, client))
    yield made
    for t in made:
        t.client.kill()
        t.client.hub.close()
    store.close()


@pytest.fixture
def browser_a(gateway, tenants: list[Tenant]) -> Iterator[DashboardSession]:  # type: ignore[no-untyped-def]
    s = DashboardSession(gateway.url)
    assert s.sign_in(tenants[0].api_key, tenants[0].secret).status_code == 303
    yield s
    s.close()


def test_pages_need_a_valid_key_and_secret(gateway, tenants: list[Tenant]) -> None:  # type: ignore[no-untyped-def]
    s = DashboardSession(gateway.url)
    for path in ("/dashboard/jobs", "/dashboard/jobs/1", "/dashboard/workers", "/dashboard/usage"):
        r = s.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login", path
    a = tenants[0]
    assert s.sign_in(a.api_key, "wrong").status_code == 401
    assert s.sign_in(tenants[1].api_key, a.secret).status_code == 401
    assert s.sign_in("admin", "wrong").status_code == 401
    assert "Invalid API key or secret" in text(s.sign_in("999999", a.secret))
    # a forged cookie (another key's id in an otherwise valid-looking value) is refused
    s.http.cookies.set("picloud_dashboard", "eyJrIjoiMTAwMSJ9.forged.sig", path="/dashboard")
    assert s.get("/dashboard/jobs").status_code == 303

    r = s.sign_in(a.api_key, a.secret)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert s.get("/dashboard/jobs").status_code == 200
    # deactivating the key signs its sessions out at the next request
    registry = AccountRegistry(a.client.store, a.client.settings)  # type: ignore[arg-type]
    registry.set_active(a.api_key, False)
    try:
        assert s.get("/dashboard/jobs").status_code == 303
    finally:
        registry.set_active(a.api_key, True)


def test_the_list_pages_and_filters_one_tenants_jobs(
    browser_a: DashboardSession, tenants: list[Tenant]
) -> None:
    a, b = tenants
    squares = a.client.map(jf.square, range(60), _label="squares")
    failed = a.client.call(jf.fail, "on purpose", _label="broken")
    a.client.join(squares)
    a.client.join(failed, ignore_errors=True)
    b_jids = b.client.map(jf.square, range(5), _label="b-only")
    b.client.join(b_jids)

    first = browser_a.get("/dashboard/jobs")
    assert first.status_code == 200
    newest = listed_jids(first)
    assert newest == list(range(failed, failed - 50, -1))  # newest first, 50 a page
    assert "b-only" not in first.text and b.api_key not in first.text

    older = browser_a.get("/dashboard/jobs", below=newest[-1])
    assert listed_jids(older) == list(range(newest[-1] - 1, 0, -1))

    assert listed_jids(browser_a.get("/dashboard/jobs", status="error")) == [failed]
    labelled = listed_jids(browser_a.get("/dashboard/jobs", label="squares"))
    assert labelled == sorted(squares, reverse=True)[:50]
    assert listed_jids(browser_a.get("/dashboard/jobs", label="b-only")) == []
    assert listed_jids(browser_a.get("/dashboard/jobs", function="jobfuncs.fail")) == [failed]
    assert listed_jids(browser_a.get("/dashboard/jobs", type="c2")) == []
    after = time.time() + 3600
    assert listed_jids(browser_a.get("/dashboard/jobs", since=str(after))) == []
    assert len(listed_jids(browser_a.get("/dashboard/jobs", until=str(after)))) == 50


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"status": "sleeping"}, "'sleeping'"),
        ({"type": "x9"}, "'x9'"),
        ({"since": "yesterday"}, "'yesterday'"),
        ({"since": "nan"}, "'nan'"),
        ({"below": "-3"}, "'-3'"),
        ({"below": "1" * 30}, "is not a job id"),
        ({"label": "x" * 300}, "longer than 200"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "before"),
    ],
)
def test_bad_filters_get_a_400_naming_the_value(
    browser_a: DashboardSession, params: dict[str, str], named: str
) -> None:
    r = browser_a.get("/dashboard/jobs", **params)
    assert r.status_code == 400
    assert named in text(r)


def test_a_job_page_shows_arguments_result_exception_and_output(
    browser_a: DashboardSession, tenants: list[Tenant]
) -> None:
    a = tenants[0]
    ok = a.client.call(jf.greet, "Ada", punctuation="?", _label="hello")
    shout = a.client.call(jf.chatty, 2, 0.01)
    bad = a.client.call(jf.fail, "no such thing")
    a.client.join([ok, shout, bad], ignore_errors=True)

    page = text(browser_a.get(f"/dashboard/jobs/{ok}"))
    assert "('Ada', punctuation='?')" in page
    assert f"Result {a.client.result(ok)!r}" in page
    assert "tests.jobfuncs.greet" in page and "hello" in page and "done" in page
    page = text(browser_a.get(f"/dashboard/jobs/{shout}"))
    assert "line 0 line 1" in page
    page = text(browser_a.get(f"/dashboard/jobs/{bad}"))
    assert "ValueError: no such thing" in page and "Traceback" in page

    # the output fragment polls only while the job runs
    running = a.client.call(jf.chatty, 100, 0.05)
    deadline = time.time() + 20
    while "line 3" not in (fragment := browser_a.get(f"/dashboard/jobs/{running}/output")).text:
        assert time.time() < deadline, fragment.text
        time.sleep(0.2)
    assert 'hx-trigger="every 1s"' in fragment.text
    a.client.kill(running)
    done = browser_a.get(f"/dashboard/jobs/{running}/output")
    assert "hx-trigger" not in done.text and "line 3" in done.text


def test_kill_and_delete_need_the_sessions_form_token(
    browser_a: DashboardSession, tenants: list[Tenant]
) -> None:
    a = tenants[0]
    jid = a.client.call(jf.sleep, 60)
    wait_status(a.client, jid, "processing")
    # a cross-site form carries the cookie at best, never the token
    assert browser_a.post(f"/dashboard/jobs/{jid}/kill", csrf=False).status_code == 403
    guessed = browser_a.post(f"/dashboard/jobs/{jid}/kill", {"csrf": "guess"}, csrf=False)
    assert guessed.status_code == 403
    assert a.client.status(jid) == "processing"
    assert browser_a.post(f"/dashboard/jobs/{jid}/delete").status_code == 400  # not finished
    r = browser_a.post(f"/dashboard/jobs/{jid}/kill")
    assert r.status_code == 303 and r.headers["location"] == f"/dashboard/jobs/{jid}"
    assert a.client.status(jid) == "killed"
    r = browser_a.post(f"/dashboard/jobs/{jid}/delete")
    assert r.status_code == 303
    assert browser_a.get(f"/dashboard/jobs/{jid}").status_code == 404


def test_bulk_kill_and_delete_act_on_one_label_of_one_tenant(
    browser_a: DashboardSession, tenants: list[Tenant]
) -> None:
    a, b = tenants
    keep = a.client.map(jf.sleep, [60] * 2, _label="keep")
    doomed = a.client.map(jf.sleep, [60] * 6, _label="batch", _type="m1")
    b_same_label = b.client.map(jf.sleep, [60] * 2, _label="batch")
    r = browser_a.post("/dashboard/jobs/bulk", {"action": "kill", "label": "batch"})
    assert r.status_code == 200 and "Killed 6 jobs labelled 'batch'" in text(r)
    assert set(a.client.status(doomed)) == {"killed"}
    assert "killed" not in a.client.status(keep)
    assert "killed" not in b.client.status(b_same_label)

    r = browser_a.post("/dashboard/jobs/bulk", {"action": "delete", "label": "batch"})
    assert "Deleted 6 jobs" in text(r)
    assert listed_jids(browser_a.get("/dashboard/jobs", label="batch")) == []
    for form in ({"action": "drop", "label": "x"}, {"action": "kill", "label": ""}):
        assert browser_a.post("/dashboard/jobs/bulk", form).status_code == 400
    r = browser_a.post("/dashboard/jobs/bulk", {"action": "kill", "label": "batch"}, csrf=False)
    assert r.status_code == 403


def test_another_tenants_jobs_keys_and_forms_are_not_found(
    browser_a: DashboardSession, tenants: list[Tenant]
) -> None:
    b = tenants[1]
    secret_job = b.client.call(jf.sleep, 60, _label="b-secret")
    wait_status(b.client, secret_job, "processing")
    # jids are per key: the same number is another job of A's, or nothing at all
    page = browser_a.get(f"/dashboard/jobs/{secret_job}")
    assert page.status_code == 404 or "b-secret" not in page.text
    for path in (
        "/dashboard/jobs",
        f"/dashboard/jobs/{secret_job}",
        f"/dashboard/jobs/{secret_job}/output",
        "/dashboard/crons",
        "/dashboard/rest",
        "/dashboard/usage",
    ):
        r = browser_a.get(path, key=b.api_key)
        assert r.status_code == 404, path
        assert "b-secret" not in r.text
    for path in (f"/dashboard/jobs/{secret_job}/kill", "/dashboard/jobs/bulk"):
        r = browser_a.post(f"{path}?key={b.api_key}", {"action": "kill", "label": "b-secret"})
        assert r.status_code == 404, path
    assert b.client.status(secret_job) == "processing"
    workers = text(browser_a.get("/dashboard/workers"))
    assert "Free slots" in workers and "Waiting chunks" not in workers  # no cluster detail


def test_the_admin_sees_every_key(gateway, tenants: list[Tenant]) -> None:  # type: ignore[no-untyped-def]
    a, b = tenants
    b_job = b.client.call(jf.square, 7, _label="seen-by-admin")
    b.client.join(b_job)
    admin = DashboardSession(gateway.url)
    assert admin.sign_in("admin", ADMIN_PASSWORD).status_code == 303
    keys = text(admin.get("/dashboard/jobs"))
    assert a.api_key in keys and b.api_key in keys and "Pick a key" in keys
    page = admin.get("/dashboard/jobs", key=b.api_key, label="seen-by-admin")
    assert listed_jids(page) == [b_job]
    assert f'href="/dashboard/jobs/{b_job}?key={b.api_key}"' in page.text
    assert "Result 49" in text(admin.get(f"/dashboard/jobs/{b_job}", key=b.api_key))
    workers = text(admin.get("/dashboard/workers"))
    assert "Waiting chunks" in workers and "Last heartbeat" in workers
    usage = text(admin.get("/dashboard/usage"))
    assert b.api_key in usage
    admin.close()


def wait_status(client: Client, jid: int, status: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while client.status(jid) != status:
        assert time.time() < deadline, f"job {jid} is {client.status(jid)}, not {status}"
        time.sleep(0.05)


def test_sign_in_from_another_site_and_odd_jids_are_4xx(gateway, tenants: list[Tenant]) -> None:  # type: ignore[no-untyped-def]
    a = tenants[0]
    s = DashboardSession(gateway.url)
    form = {"api_key": a.api_key, "secret": a.secret}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        r = s.http.post("/dashboard/login", data=form, headers=headers)
        assert r.status_code == 403 and "set-cookie" not in r.headers  # no login CSRF
    assert s.sign_in(a.api_key, a.secret).status_code == 303
    for odd in ("²", "1" * 5000, "0", "-1"):
        assert 400 <= s.get(f"/dashboard/jobs/{odd}").status_code < 500, odd
    s.close()

"""Fuzz the dashboard's pages from the gateway's OpenAPI document: no 5xx, ever.

Signed in as a tenant that has jobs, crons' and endpoints' pages to read, schemathesis
sends every page and form generated values (with the session's own CSRF token, so
forms get past it and their values are what is tested). Every answer must be a page
or a redirect: 2xx, 3xx or a 4xx page, never a server error.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis

from tests import jobfuncs as jf
from tests.dashboard.session import DashboardSession

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


def test_no_server_errors_on_any_page(gateway, account) -> None:  # type: ignore[no-untyped-def]
    api_key, secret, client = account
    jids = client.map(jf.square, range(3), _label="fuzzed")
    client.join(jids)
    session = DashboardSession(gateway.url)
    assert session.sign_in(api_key, secret).status_code == 303
    cookies = dict(session.http.cookies)
    headers = {"X-CSRF-Token": session.csrf()}
    schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith("/dashboard") or operation.path.endswith("/logout"):
            continue

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case):  # type: ignore[no-untyped-def]
            response = case.call(headers=headers, cookies=cookies, allow_redirects=False)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                case.query,
                case.body,
                response.text[:300],
            )
            if response.status_code not in (204, 303):
                kind = response.headers["content-type"]
                kind = kind[0] if isinstance(kind, list) else kind
                assert kind.startswith("text/html"), (case.formatted_path, kind)

        run()
        tried += 1
    assert tried >= 10
    # the fuzzing killed or deleted at most this tenant's own jobs, and the session lives
    assert session.get("/dashboard/jobs").status_code == 200
    session.close()

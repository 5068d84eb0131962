"""A browser-like HTTP session on the dashboard: cookies, its CSRF token, page text."""

from __future__ import annotations

import html
import re

import httpx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class DashboardSession:
    """Signs in with a key (or as admin) and reads pages the way a browser would."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)

    def sign_in(self, api_key: str, secret: str) -> httpx.Response:
        return self.http.post("/dashboard/login", data={"api_key": api_key, "secret": secret})

    def get(self, path: str, **params: object) -> httpx.Response:
        return self.http.get(path, params={k: v for k, v in params.items() if v is not None})

    def csrf(self) -> str:
        page = self.http.get("/dashboard/jobs")
        found = CSRF.search(page.text)
        assert found, page.text[:500]
        return found.group(1)

    def post(
        self, path: str, data: dict[str, str] | None = None, csrf: bool = True
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf"] = self.csrf()
        return self.http.post(path, data=form)

    def close(self) -> None:
        self.http.close()


def text(response: httpx.Response) -> str:
    """A page's visible text, whitespace collapsed."""
    body = re.sub(r"<(script|style)[^>]*>.*?</\\1>", " ", response.text, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def listed_jids(response: httpx.Response) -> list[int]:
    """The jids of a job list page, in page order."""
    return [int(j) for j in re.findall(r'<tr data-jid="(\d+)"', response.text)]

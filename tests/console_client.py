"""Talking to a site's staff console over real HTTP in tests: accounts, signing in, forms."""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from console.staff import add_staff, set_password
from sync.site import Site

PASSWORD = "a long enough password"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_NONCE = re.compile(r'name="login_nonce" value="([^"]+)"')


def staff_member(site: Site, name: str, role: str, language: str = "en") -> str:
    """A console account at `site` with its password set; returns the password."""
    _, code = add_staff(site.store, name, role, at_hub=site.is_hub, now_ms=site.now_ms(), language=language)
    set_password(site.store, name, code, PASSWORD, now_ms=site.now_ms())
    return PASSWORD


@dataclass
class ConsoleClient:
    """A browser-like HTTP client of one console: cookies kept, redirects not followed."""

    url: str
    verify: ssl.SSLContext | bool = True
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url.rstrip("/"), follow_redirects=False, verify=self.verify, timeout=30)

    def close(self) -> None:
        self.http.close()

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def sign_in(self, name: str, password: str = PASSWORD) -> httpx.Response:
        page = self.http.get("/login")
        nonce = _NONCE.search(page.text)
        assert nonce, page.text
        return self.http.post("/login", data={"login_nonce": nonce.group(1), "name": name, "password": password})

    def csrf(self, path: str = "/search") -> str:
        page = self.http.get(path)
        found = _CSRF.search(page.text)
        assert found, f"no form with a CSRF token on {path}: {page.status_code}"
        return found.group(1)

    def post(self, path: str, data: Mapping[str, str | list[str]], *, csrf: bool = True) -> httpx.Response:
        body: dict[str, str | list[str]] = dict(data)
        if csrf:
            body["csrf"] = self.csrf()
        return self.http.post(path, data=body)

"""The staff console: the web pages every site serves to its own staff.

Served by `hub serve` and `node serve` next to the gRPC server (`start_console`), on the
site's `web_listen` address: HTTPS with the certificate and key the operator gives
(`web_cert`, `web_key`), otherwise plain HTTP, and then only on a loopback address.
Starlette routes, Jinja2 templates (autoescaped), the assets vendored in console/static;
nothing is fetched from elsewhere and pages carry a Content-Security-Policy without
inline scripts or styles.

Every page but sign-in needs a session (console.sessions); every form carries the
session's CSRF token. A page handler is a plain function of an `Ask` (the request, its
session, its form) run on a worker thread; it calls the same domain operations as the
admin API (sync.site, transfer.*), so the console follows the same rules as the CLI. The
site decides what a change may be (its rights: owner, hub, party); the console's role
decides who may ask: `viewer` reads, `curator` (HQ) and `staff` (a centre) also write.
Errors become a page with a plain message: the domain's errors in their own words and
status, anything else a 500 page while the log gets the details.

The hub and the node each add the pages only their staff use (`ConsolePage`), with
their own templates beside them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import uvicorn
from babel.dates import format_timedelta
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from console.i18n import translations
from console.sessions import SESSION_S, Session, end_session, open_session, record_action, session_of
from console.staff import LANGUAGES, StaffAccount, set_language, set_password, sign_in
from console.steps import REASON_CHOICES, step_field
from sync.errors import (
    ConfigError,
    FailedPrecondition,
    FieldViolation,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TechbridgeError,
)
from sync.kinds import Action
from sync.runtime import RunningServer
from sync.site import Site
from techbridge.v1 import admin_pb2

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "tb_session"
LOGIN_COOKIE = "tb_login"
WRITER_ROLES = frozenset({"curator", "staff"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# What a redirect may say was done: a step, or one of the console's own changes.
DONE_WORDS = frozenset({*(a.value for a in Action), "create", "edit", "settle"})


class StatusSource(Protocol):
    """How a site reports its links (the hub: every centre; a node: its hub)."""

    def peer_statuses(self) -> list[admin_pb2.PeerStatus]: ...


@dataclass
class Ask:
    """One request to a page: who asks, what they sent, and the console that answers."""

    console: Console
    request: Request
    session: Session | None
    form: FormData | None

    @property
    def site(self) -> Site:
        return self.console.site

    @property
    def account(self) -> StaffAccount:
        assert self.session is not None
        return self.session.account

    @property
    def language(self) -> str:
        return self.session.account.language if self.session else "en"

    def t(self, message: str) -> str:
        return translations(self.language).gettext(message)

    def done(self) -> str:
        """The step a redirect says was just taken, if it is one the console takes (shown
        translated: never the request's own text)."""
        said = self.arg("done")
        return said if said in DONE_WORDS else ""

    def arg(self, name: str, default: str = "") -> str:
        """A query parameter, stripped."""
        return (self.request.query_params.get(name) or default).strip()

    def args(self, name: str) -> list[str]:
        return [v.strip() for v in self.request.query_params.getlist(name) if v.strip()]

    def field(self, name: str) -> str:
        """A form field, stripped ("" when absent)."""
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else ""

    def fields(self, name: str) -> list[str]:
        if self.form is None:
            return []
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str) and v.strip()]

    def centre_names(self) -> dict[str, str]:
        """Site id -> the centre's name, from the registry."""
        return {c.id: c.name for c in self.site.registry().centres}

    def may_write(self) -> bool:
        return self.session is not None and self.session.account.role in WRITER_ROLES

    def need_writer(self) -> None:
        if not self.may_write():
            raise PermissionDenied("your role reads only: ask your site's operator for a role that may change records")

    def noted(self, version_id: str, record_id: str) -> None:
        """Record that this staff member wrote `version_id` through the console."""
        record_action(self.site.store, version_id, record_id, self.account.name, now_ms=self.site.now_ms())

    def render(self, template: str, status: int = 200, /, **values: Any) -> HTMLResponse:
        return self.console.render(self, template, status, **values)

    def redirect(self, path: str, **params: str) -> RedirectResponse:
        query = urlencode({k: v for k, v in params.items() if v})
        return RedirectResponse(path + (f"?{query}" if query else ""), status_code=303)


Handler = Callable[[Ask], Response]


@dataclass(frozen=True)
class ConsolePage:
    """A page (or a form's target): its path, handler, methods, and its place in the menu."""

    path: str
    handler: Handler
    methods: tuple[str, ...] = ("GET",)
    label: str = ""  # in the menu when set (a message, translated)
    public: bool = False  # reachable without a session (sign-in only)
    uploads: bool = False  # its form may carry one file


@dataclass
class Console:
    site: Site
    status: StatusSource
    pages: Sequence[ConsolePage]
    template_dirs: Sequence[Path] = ()
    secure: bool = False
    envs: dict[str, Environment] = field(default_factory=dict)
    # Work a page started that outlives its request (an import), by id.
    jobs: dict[str, Any] = field(default_factory=dict)
    # What pages keep between requests (the figures counted), by name.
    kept: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        loader = ChoiceLoader([FileSystemLoader(str(d)) for d in (*self.template_dirs, HERE / "templates")])
        for language in LANGUAGES:
            env = Environment(
                loader=loader,
                autoescape=select_autoescape(["html", "svg"], default_for_string=True),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
            env.filters["when"] = when
            env.filters["day"] = day
            env.filters["ago"] = lambda ms, lang=language: ago(ms, self.site.now_ms(), lang)
            env.filters["span"] = lambda ms, lang=language: span(ms, lang)
            env.globals["url"] = url_with
            env.globals["country_xy"] = country_xy
            env.globals["step_field"] = step_field
            env.globals["reason_choices"] = REASON_CHOICES
            self.envs[language] = env

    @property
    def menu(self) -> list[tuple[str, str]]:
        return [(p.path, p.label) for p in self.pages if p.label]

    def render(self, ask: Ask, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        env = self.envs[ask.language]
        html = env.get_template(template).render(
            ask=ask,
            me=ask.session.account if ask.session else None,
            csrf=ask.session.csrf if ask.session else "",
            menu=self.menu,
            path=ask.request.url.path,
            site=self.site,
            at_hub=self.site.is_hub,
            may_write=ask.may_write(),
            languages=LANGUAGES,
            **values,
        )
        return HTMLResponse(html, status_code=status)


# ---- formatting ------------------------------------------------------------------------


def when(ms: int) -> str:
    if not ms:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def day(ms: int) -> str:
    if not ms:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def ago(ms: int, now_ms: int, language: str) -> str:
    """How long ago `ms` was, in the console's language ("—" for never)."""
    if not ms:
        return "—"
    delta = timedelta(milliseconds=max(1000, now_ms - ms))
    return format_timedelta(-delta, locale=babel_locale(language), add_direction=True, threshold=1.1)


def span(ms: int, language: str) -> str:
    """A duration in the console's language."""
    return format_timedelta(timedelta(milliseconds=max(0, ms)), locale=babel_locale(language), threshold=1.1)


def babel_locale(language: str) -> str:
    return "zh_Hans_CN" if language == "zh" else "en"


def url_with(path: str, params: Mapping[str, Any], **changes: Any) -> str:
    """`path` with the query `params` updated by `changes` (a None value drops a key; a
    list repeats it)."""
    merged: dict[str, Any] = {k: v for k, v in params.items()}
    merged.update(changes)
    pairs: list[tuple[str, str]] = []
    for k, v in merged.items():
        if v is None or v == "" or v == []:
            continue
        if isinstance(v, (list, tuple)):
            pairs.extend((k, str(x)) for x in v)
        else:
            pairs.append((k, str(v)))
    return path + (("?" + urlencode(pairs)) if pairs else "")


@cache
def _centroids() -> dict[str, tuple[float, float]]:
    raw = json.loads((HERE / "static" / "centroids.json").read_text())
    return {code: (float(x), float(y)) for code, (x, y) in raw.items()}


def country_xy(country: str) -> tuple[float, float] | None:
    """Where a country sits on the console's world map (static/world.svg), if known."""
    return _centroids().get(country.upper())


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of this site only."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


# ---- requests ------------------------------------------------------------------------------

STATUS_OF: list[tuple[type[TechbridgeError], int]] = [
    (InvalidInput, 400),
    (NotFound, 404),
    (PermissionDenied, 403),
    (FailedPrecondition, 409),
]


class _SignInFirst(Exception):
    """A page that needs a session was asked without one: answered by the sign-in page."""


def _endpoint(console: Console, page: ConsolePage) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        form = None
        if request.method == "POST":
            form = await request.form(max_files=1 if page.uploads else 0, max_fields=2000)
        return await run_in_threadpool(_answer, console, page, request, form)

    return endpoint


def _answer(console: Console, page: ConsolePage, request: Request, form: FormData | None) -> Response:
    now = console.site.now_ms()
    session = session_of(console.site.store, request.cookies.get(SESSION_COOKIE, ""), now_ms=now)
    ask = Ask(console, request, session, form)
    try:
        if not page.public:
            if session is None:
                raise _SignInFirst
            if form is not None:
                sent = form.get("csrf")
                if not isinstance(sent, str) or not secrets.compare_digest(sent, session.csrf):
                    raise PermissionDenied("this form has expired or did not come from this console: reload the page")
        return page.handler(ask)
    except _SignInFirst:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    except TechbridgeError as exc:
        status = next((code for cls, code in STATUS_OF if isinstance(exc, cls)), 400)
        lines = [f"{v.field}: {v.description}" for v in exc.violations] if isinstance(exc, InvalidInput) else [str(exc)]
        return ask.render("error.html", status, problems=lines)
    except Exception:
        log.exception("console page %s failed", request.url.path)
        return ask.render("error.html", 500, problems=[ask.t("Something went wrong on this site; its log says what.")])


def _cookie(response: Response, name: str, value: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/")


# ---- signing in ----------------------------------------------------------------------------


def login_page(ask: Ask) -> Response:
    if ask.request.method == "GET":
        if ask.session is not None:
            return ask.redirect(safe_next(ask.arg("next", "/")))
        return _login_form(ask, [])
    nonce = ask.request.cookies.get(LOGIN_COOKIE, "")
    sent = ask.field("login_nonce")
    if not nonce or not secrets.compare_digest(nonce, sent):
        return _login_form(ask, [ask.t("The sign-in form expired: try again.")], status=403)
    name, password = ask.field("name"), ask.form.get("password") if ask.form else ""
    store, now = ask.site.store, ask.site.now_ms()
    try:
        account = sign_in(store, name, password if isinstance(password, str) else "", now_ms=now)
    except PermissionDenied:
        return _login_form(ask, [ask.t("That name and password do not match an account here.")], status=403)
    except FailedPrecondition:
        return _login_form(
            ask, [ask.t("Too many failed sign-ins: this account is locked for a while. Try later.")], status=429
        )
    token = open_session(store, account, now_ms=now)
    log.info("console: %s signed in", account.name)
    response = ask.redirect(safe_next(ask.field("next") or "/"))
    _cookie(response, SESSION_COOKIE, token, secure=ask.console.secure, max_age=SESSION_S)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


def _login_form(ask: Ask, problems: list[str], status: int = 200, template: str = "login.html") -> Response:
    nonce = secrets.token_urlsafe(24)
    response = ask.render(
        template, status, problems=problems, login_nonce=nonce, next=ask.arg("next") or ask.field("next")
    )
    _cookie(response, LOGIN_COOKIE, nonce, secure=ask.console.secure, max_age=3600)
    return response


def welcome_page(ask: Ask) -> Response:
    """Set a password with the one-time code `staff add` or `staff reset` printed."""
    if ask.request.method == "GET":
        return _login_form(ask, [], template="welcome.html")
    nonce = ask.request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not secrets.compare_digest(nonce, ask.field("login_nonce")):
        return _login_form(ask, [ask.t("The form expired: try again.")], 403, "welcome.html")
    password = ask.form.get("password") if ask.form else ""
    again = ask.form.get("again") if ask.form else ""
    if password != again:
        return _login_form(ask, [ask.t("The two passwords differ.")], 400, "welcome.html")
    try:
        set_password(
            ask.site.store,
            ask.field("name"),
            ask.field("code"),
            password if isinstance(password, str) else "",
            now_ms=ask.site.now_ms(),
        )
    except InvalidInput as exc:
        return _login_form(ask, [f"{v.field}: {v.description}" for v in exc.violations], 400, "welcome.html")
    except PermissionDenied:
        return _login_form(
            ask, [ask.t("That name and one-time code do not match a code still valid here.")], 403, "welcome.html"
        )
    return ask.redirect("/login", done="1")


def logout_page(ask: Ask) -> Response:
    end_session(ask.site.store, ask.request.cookies.get(SESSION_COOKIE, ""))
    response = ask.redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def language_page(ask: Ask) -> Response:
    set_language(ask.site.store, ask.account.staff_id, ask.field("language"))
    return ask.redirect(safe_next(ask.field("back") or "/"))


def home_page(ask: Ask) -> Response:
    return ask.redirect("/network")


BASE_PAGES = (
    ConsolePage("/login", login_page, ("GET", "POST"), public=True),
    ConsolePage("/welcome", welcome_page, ("GET", "POST"), public=True),
    ConsolePage("/logout", logout_page, ("POST",)),
    ConsolePage("/language", language_page, ("POST",)),
    ConsolePage("/", home_page),
)


async def _security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
    response: Response = await call_next(request)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if request.url.path != "/static" and not request.url.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def make_app(console: Console) -> Starlette:
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    routes: list[Route | Mount] = [
        Route(p.path, _endpoint(console, p), methods=list(p.methods)) for p in (*BASE_PAGES, *console.pages)
    ]
    routes.append(Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"))
    app = Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=_security_headers)])

    async def not_found(request: Request, exc: Exception) -> Response:
        return HTMLResponse("<!doctype html><title>Not found</title><p>No such page here.</p>", status_code=404)

    app.add_exception_handler(404, not_found)
    return app


# ---- serving -------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only: localhost or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class RunningConsole:
    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def start_console(
    site: Site,
    status: StatusSource,
    pages: Sequence[ConsolePage],
    *,
    listen: str,
    cert: str = "",
    key: str = "",
    template_dirs: Sequence[Path] = (),
) -> RunningConsole:
    """Serve the console on `listen` (HOST:PORT, port 0 for any) in a thread; returns once
    the socket is bound. ConfigError for an address in use, a plain-HTTP address that is
    not loopback, or a certificate that cannot be read."""
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit():
        raise ConfigError(f"web listen address {listen!r}: give HOST:PORT, e.g. 127.0.0.1:7780")
    if bool(cert) != bool(key):
        raise ConfigError("the console needs both --web-cert and --web-key for HTTPS, or neither")
    secure = bool(cert)
    if not secure and not is_loopback(host):
        raise ConfigError(
            "the console serves plain HTTP on loopback addresses only; "
            f"give --web-cert and --web-key to serve on {host}"
        )
    for path in (cert, key):
        if path and not Path(path).is_file():
            raise ConfigError(f"the console's TLS file {path} cannot be read")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on each accepted connection: a
    # kept-alive connection otherwise waits out the peer's delayed ACK (40 ms) per response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, int(port_text)))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"the console cannot listen on {listen}: {exc.strerror}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    bound_port = sock.getsockname()[1]
    console = Console(site, status, pages, template_dirs, secure=secure)
    config = uvicorn.Config(
        make_app(console),
        log_level="warning",
        access_log=False,
        ssl_certfile=cert or None,
        ssl_keyfile=key or None,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    try:
        config.load()
    except Exception as exc:  # an unreadable or mismatched certificate
        sock.close()
        raise ConfigError(f"the console cannot use its certificate and key: {exc}") from exc
    server = uvicorn.Server(config)
    started = threading.Event()

    def run() -> None:
        with contextlib.suppress(Exception):
            server.run(sockets=[sock])
        started.set()

    thread = threading.Thread(target=run, name="console", daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    url = f"{'https' if secure else 'http'}://{shown}:{bound_port}/"
    log.info("console on %s%s", url, "" if secure else " (plain HTTP, loopback only)")
    return RunningConsole(server, thread, url)


def problems_by_field(exc: InvalidInput) -> dict[str, list[str]]:
    """Each field's problems (`keywords[2]` under `keywords`), for a form."""
    out: dict[str, list[str]] = {}
    for v in exc.violations:
        out.setdefault(v.field.split("[")[0].split(".")[0], []).append(v.description)
    return out


def violation(field_name: str, text: str) -> InvalidInput:
    return InvalidInput([FieldViolation(field_name, text)])


def serve_console(
    server: RunningServer,
    status: StatusSource,
    pages: Sequence[ConsolePage],
    *,
    listen: str | None = None,
    template_dirs: Sequence[Path] = (),
) -> RunningConsole | None:
    """Start the console of a serving site as its configuration says (None when
    `web_listen` is "off"), stopped with the server, its address recorded in the data
    folder and on `server`. ConfigError (the server stopped) when it cannot start."""
    site = server.site
    where = listen or site.config.web_listen
    if where == "off":
        return None
    try:
        running = start_console(
            site,
            status,
            pages,
            listen=where,
            cert=site.config.web_cert,
            key=site.config.web_key,
            template_dirs=template_dirs,
        )
    except ConfigError:
        server.stop(grace=0)
        raise
    server.on_stop.append(running.stop)
    server.web_url = running.url
    site.data.write_web_url(running.url)
    return running

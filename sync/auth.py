"""Who is calling.

Three kinds of caller exist:

* a **site** (a node calling the hub's SyncService) proves it holds its
  registered signing key: metadata carries the site id, the time, and an
  Ed25519 signature over CALL_DOMAIN + "site|method|time". The hub checks the
  key against its registry and refuses a stamp more than CALL_SKEW_MS away.
  Mutual TLS with the certificates issued at enrolment adds transport
  identity; this signature is the end-to-end proof.
* the site's own **operator** (the techbridge CLI) sends the admin credential
  from the site's config as "authorization: Bearer <token>".
* a **firm** (the techbridge CLI with a firm key file) signs each call the
  same way as a site, with its firm id and its own key; the site checks the
  key against the firm's record (sync.envelope.FirmKey).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable, Sequence

from sync.envelope import FirmKey
from sync.errors import KeyNotRegistered, Unauthenticated
from sync.keys import SigningKey
from sync.registry import CentreStatus, Registry
from sync.signing import CALL_DOMAIN, sign, verify

SITE_HEADER = "x-techbridge-site"
TIME_HEADER = "x-techbridge-time"
SIG_HEADER = "x-techbridge-sig-bin"
KEY_HEADER = "x-techbridge-key"
CALL_SKEW_MS = 5 * 60 * 1000

Metadata = Sequence[tuple[str, str | bytes]]


def _call_bytes(site: str, method: str, time_ms: int) -> bytes:
    return f"{site}|{method}|{time_ms}".encode()


def site_metadata(key: SigningKey, site: str, method: str, now_ms: int) -> tuple[tuple[str, str | bytes], ...]:
    return (
        (SITE_HEADER, site),
        (KEY_HEADER, key.key_id),
        (TIME_HEADER, str(now_ms)),
        (SIG_HEADER, sign(key, CALL_DOMAIN, _call_bytes(site, method, now_ms))),
    )


def authenticate_site(metadata: Metadata, method: str, registry: Registry | None, now_ms: int) -> str:
    """Return the calling site's id, or raise Unauthenticated saying why."""
    md = {k: v for k, v in metadata}
    site, key_id, time_s, sig = md.get(SITE_HEADER), md.get(KEY_HEADER), md.get(TIME_HEADER), md.get(SIG_HEADER)
    if (
        not isinstance(site, str)
        or not isinstance(key_id, str)
        or not isinstance(time_s, str)
        or not isinstance(sig, bytes)
    ):
        raise Unauthenticated("call is not signed by a site (missing techbridge site headers)")
    if registry is None:
        raise Unauthenticated("this site holds no registry yet")
    found = registry.key(key_id)
    if found is None or found[0].id != site:
        raise KeyNotRegistered(f"key {key_id} is not registered to site {site!r}")
    if found[0].status != CentreStatus.ACTIVE:
        raise Unauthenticated(f"site {site!r} is not active")
    if found[1].revoked_at_ms or found[1].valid_until_ms:
        raise Unauthenticated(f"key {key_id} is {'revoked' if found[1].revoked_at_ms else 'retired'}")
    try:
        time_ms = int(time_s)
    except ValueError as exc:
        raise Unauthenticated("call time is not a number") from exc
    if abs(now_ms - time_ms) > CALL_SKEW_MS:
        raise Unauthenticated("call time is more than 5 minutes from this site's clock")
    if not verify(found[1].public_key, CALL_DOMAIN, _call_bytes(site, method, time_ms), sig):
        raise Unauthenticated("call signature does not verify")
    return site


FIRM_HEADER = "x-techbridge-firm"


def firm_metadata(key: SigningKey, firm_id: str, method: str, now_ms: int) -> tuple[tuple[str, str | bytes], ...]:
    return (
        (FIRM_HEADER, firm_id),
        (KEY_HEADER, key.key_id),
        (TIME_HEADER, str(now_ms)),
        (SIG_HEADER, sign(key, CALL_DOMAIN, _call_bytes("firm:" + firm_id, method, now_ms))),
    )


def authenticate_firm(
    metadata: Metadata, method: str, firm_key: Callable[[str], FirmKey | None], now_ms: int
) -> FirmKey:
    """Return the calling firm's key record, or raise Unauthenticated saying why."""
    md = {k: v for k, v in metadata}
    firm_id, key_id, time_s, sig = md.get(FIRM_HEADER), md.get(KEY_HEADER), md.get(TIME_HEADER), md.get(SIG_HEADER)
    if (
        not isinstance(firm_id, str)
        or not isinstance(key_id, str)
        or not isinstance(time_s, str)
        or not isinstance(sig, bytes)
    ):
        raise Unauthenticated("call is not signed by a firm (missing techbridge firm headers)")
    firm = firm_key(firm_id)
    if firm is None:
        raise Unauthenticated(f"firm {firm_id!r} is not known here (yet); try its home centre, or later")
    if firm.key_id != key_id:
        raise Unauthenticated(f"key {key_id} is not firm {firm_id}'s key")
    if firm.erased_at_ms:
        raise Unauthenticated(f"firm {firm_id} was erased")
    try:
        time_ms = int(time_s)
    except ValueError as exc:
        raise Unauthenticated("call time is not a number") from exc
    if abs(now_ms - time_ms) > CALL_SKEW_MS:
        raise Unauthenticated("call time is more than 5 minutes from this site's clock")
    if not verify(firm.public_key, CALL_DOMAIN, _call_bytes("firm:" + firm_id, method, time_ms), sig):
        raise Unauthenticated("call signature does not verify")
    return firm


def admin_metadata(token: str) -> tuple[tuple[str, str | bytes], ...]:
    return (("authorization", f"Bearer {token}"),)


def check_admin(metadata: Metadata, token: str) -> None:
    for k, v in metadata:
        if k == "authorization" and isinstance(v, str) and v.startswith("Bearer "):
            if hmac.compare_digest(v[7:].encode(), token.encode()):
                return
            raise Unauthenticated("admin credential does not match this site's")
    raise Unauthenticated("admin credential missing (authorization: Bearer ...)")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

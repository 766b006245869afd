"""The technology-transfer domain through real servers: firms, requests sent
through any centre, expressions of interest routed to the owning centre,
anonymity until introduction, and the attacks on firms' records."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cli.firmclient import FirmClient
from sync.clock import Stamp
from sync.config import DataDir
from sync.envelope import SignatureValue, Version, countersign, envelope_to_pb, make_version
from sync.ids import new_record_id
from sync.keys import SigningKey
from sync.kinds import Action, Change, FieldValue, create_change, make_content, next_status, pins_of
from sync.protocol.receive import checked_ahead, receive
from sync.server import field_violations
from techbridge.v1 import admin_pb2, records_pb2, sync_pb2
from tests.harness import Hub, Node, Site, cli, make_node, open_port, push_raw, register_firm
from transfer.expiry import DAY_MS
from transfer.records import FIRM, INTEREST, LISTING, REQUEST, listing_content


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def request_change(via: str, to: tuple[str, ...], title: str = "Machine-vision partner") -> Change:
    content = make_content(
        REQUEST,
        {"title": title, "request_type": "partner", "sought": "A partner for machine vision", "via": via},
        "submitted",
    )
    return create_change(content, tuple(sorted({*to, via})))


@pytest.fixture
def network(hub: Hub, tmp_path: Path) -> Iterator[tuple[Hub, Node, Node, Node]]:
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    tl = make_node(hub, tmp_path / "toledo", "toledo", country="ES")
    yield hub, br, dj, tl
    for n in (br, dj, tl):
        n.stop()


def sync_all(*nodes: Node) -> None:
    for _ in range(2):
        for n in nodes:
            n.sync()


def test_a_firm_registered_at_hq_sends_a_request_through_brussels_to_daejeon_only(
    network: tuple[Hub, Node, Node, Node],
) -> None:
    hub, br, dj, tl = network
    firm = register_firm(hub, "Shenzhen Robotics Ltd")
    sync_all(br, dj, tl)
    with FirmClient(firm, open_port(br)) as c:
        assert c.site_id == "brussels"  # learned from the certificate, checked against the CA
        view = c.create("request", request_change("brussels", ("daejeon",)))
    assert view.provenance.relay == "brussels" and view.status == "submitted"
    sync_all(br, dj, tl)
    at_dj = dj.show(view.id)
    assert at_dj.provenance.verified and at_dj.provenance.author == firm.firm_id
    assert at_dj.provenance.relay == "brussels" and at_dj.values.request.via == "brussels"
    assert hub.show(view.id).provenance.verified
    with pytest.raises(grpc.RpcError) as e:
        tl.show(view.id)  # addressed to Daejeon: never reaches Toledo
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # The firm edits it through another centre that holds it, and withdraws it.
    with FirmClient(firm, open_port(dj)) as c:
        got = c.get(view.id)
        edited = c.change(got, Change((("sought", "Machine vision for welding robots"),)))
        assert edited.values.request.sought == "Machine vision for welding robots"
        withdrawn = c.change(edited, Change(action=Action.WITHDRAW, status="withdrawn"))
        assert withdrawn.status == "withdrawn"
    sync_all(br, dj, tl)
    assert br.show(view.id).status == "withdrawn" and hub.show(view.id).status == "withdrawn"


def test_firms_cannot_act_for_one_another_and_nodes_cannot_sign_for_firms(
    network: tuple[Hub, Node, Node, Node],
) -> None:
    hub, br, dj, _ = network
    acme = register_firm(hub, "Acme")
    other = register_firm(br, "Other GmbH", "DE")
    sync_all(br, dj)
    with FirmClient(acme, open_port(br)) as c:
        view = c.create("request", request_change("brussels", ()))
    # Another firm editing Acme's request: refused where it enters, nothing stored.
    with FirmClient(other, open_port(br)) as c:
        target = br.show(view.id)
        v = make_version(
            other.key,
            site=other.firm_id,
            origin=acme.firm_id,
            record_id=view.id,
            hlc=Stamp(now_ms(), 0),
            change=Change((("sought", "hijacked"),)),
            parents=tuple(target.heads),
            record_nonce=target.record_nonce,
            kind=REQUEST,
        )
        with pytest.raises(grpc.RpcError) as e:
            c.submit(v)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "written only by the owner" in (e.value.details() or "")
    assert br.show(view.id).version_count == 1
    # A node signing a firm's request with its own key (no firm signature): refused on receipt.
    br_key = SigningKey.load(DataDir(br.path).signing_key)
    rid, nonce = new_record_id(acme.firm_id, now_ms(), pins_of(REQUEST, request_change("brussels", ())))
    forged = make_version(
        br_key,
        site=acme.firm_id,
        record_id=rid,
        hlc=Stamp(now_ms(), 0),
        change=request_change("brussels", ()),
        record_nonce=nonce,
        kind=REQUEST,
    )
    resp = push_raw(hub, br.tls, br_key, "brussels", "brussels:forged", [envelope_to_pb(forged)])
    assert resp.stored == 0 and "belongs to brussels" in resp.rejected[0].reason
    # A firm's version without a relay signature: refused on receipt too.
    bare = make_version(
        acme.key,
        site=acme.firm_id,
        record_id=rid,
        hlc=Stamp(now_ms(), 0),
        change=request_change("brussels", ()),
        record_nonce=nonce,
        kind=REQUEST,
    )
    resp = push_raw(hub, br.tls, br_key, "brussels", "brussels:bare", [envelope_to_pb(bare)])
    assert resp.stored == 0 and "relay signature" in resp.rejected[0].reason
    # A relay signature over other bytes than the body: refused.
    relayed = dataclasses.replace(
        bare, signatures=(*bare.signatures, SignatureValue(br_key.key_id, b"\x00" * 64, "relay"))
    )
    resp = push_raw(hub, br.tls, br_key, "brussels", "brussels:badrelay", [envelope_to_pb(relayed)])
    assert resp.stored == 0 and "relay signature does not verify" in resp.rejected[0].reason


def test_a_bad_request_names_every_problem_and_stores_nothing(network: tuple[Hub, Node, Node, Node]) -> None:
    hub, br, _, _ = network
    firm = register_firm(hub, "Acme")
    br.sync()
    with FirmClient(firm, open_port(br)) as c:
        content = make_content(
            REQUEST,
            {"title": "x" * 300, "request_type": "investment", "sought": "money", "via": "brussels", "amount_min": 9},
            "submitted",
        )
        with pytest.raises(grpc.RpcError) as e:
            c.create("request", create_change(content, ()))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = e.value.details() or ""
    assert "title" in details and "amount_max" in details
    assert br.listings() == [v for v in br.listings() if v.kind == "firm"]


def test_interest_is_routed_to_the_owner_and_identities_wait_for_the_introduction(
    network: tuple[Hub, Node, Node, Node],
) -> None:
    hub, br, dj, tl = network
    secret = "Hanbit Microsystems Co."
    offer = dj.admin.AddRecord(
        admin_pb2.AddRecordRequest(
            values=records_pb2.RecordValues(listing=records_pb2.Listing(title="Edge AI chip", anonymous=True)),
            private_note=f"Client: {secret}",
        ),
        metadata=dj.md,
        timeout=10,
    ).record.id
    firm = register_firm(hub, "Shenzhen Robotics Ltd")
    sync_all(br, dj, tl)
    hub.admin.StepRecord(
        admin_pb2.StepRecordRequest(id=offer, action=records_pb2.LIFECYCLE_ACTION_VALIDATE), metadata=hub.md, timeout=10
    )
    sync_all(dj, br, tl)
    dj.admin.StepRecord(
        admin_pb2.StepRecordRequest(id=offer, action=records_pb2.LIFECYCLE_ACTION_PUBLISH), metadata=dj.md, timeout=10
    )
    sync_all(dj, br, tl)
    with FirmClient(firm, open_port(br)) as c:
        target = c.get(offer)  # published: a firm may see it
        values: dict[str, FieldValue] = {
            "to_record": offer,
            "to_kind": "listing",
            "to_owner": target.provenance.origin,
            "from_centre": "brussels",
            "message": "We would like to license this",
            "sender_consent": False,
        }
        interest = c.create("interest", create_change(make_content(INTEREST, values, "sent"), ("brussels", "daejeon")))
    sync_all(br, dj, tl)
    assert dj.show(interest.id).status == "sent"
    with pytest.raises(grpc.RpcError):
        tl.show(interest.id)  # routed to the owning centre, not to everyone

    def step(site: Site, action: int, **fields: str) -> admin_pb2.RecordView:
        req = admin_pb2.StepRecordRequest(id=interest.id, action=action, fields=sorted(fields))  # type: ignore[arg-type]
        for k, v in fields.items():
            setattr(req.values.interest, k, v)
        return site.admin.StepRecord(req, metadata=site.md, timeout=10).record

    with pytest.raises(grpc.RpcError) as e:
        step(br, records_pb2.LIFECYCLE_ACTION_ACCEPT)  # only Daejeon handles it
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert step(dj, records_pb2.LIFECYCLE_ACTION_ACCEPT).status == "accepted"
    with pytest.raises(grpc.RpcError) as e:
        step(dj, records_pb2.LIFECYCLE_ACTION_INTRODUCE, owner_identity=secret)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "consented" in (e.value.details() or "")
    sync_all(dj, br, tl)
    # Before the introduction, the client's identity is held only at Daejeon.
    for site in (hub, br, tl):
        assert secret.encode() not in _database_bytes(site), site.path.name
    with FirmClient(firm, open_port(br)) as c:
        got = c.get(interest.id)
        c.change(got, Change((("sender_consent", True),)))
    sync_all(br, dj, tl)
    introduced = step(dj, records_pb2.LIFECYCLE_ACTION_INTRODUCE, owner_identity=secret)
    assert introduced.status == "introduced"
    sync_all(dj, br, tl)
    at_br = br.show(interest.id)
    assert at_br.status == "introduced" and at_br.values.interest.owner_identity == secret
    assert secret.encode() not in _database_bytes(tl)  # still not at centres outside the deal


def test_decline_needs_a_reason_from_the_list_and_ends_the_steps(network: tuple[Hub, Node, Node, Node]) -> None:
    _, br, dj, _ = network
    offer = dj.add_record("Solid-state electrolyte")
    sync_all(dj, br)
    rid = br.admin.AddRecord(
        admin_pb2.AddRecordRequest(
            values=records_pb2.RecordValues(
                interest=records_pb2.Interest(
                    to_record=offer, to_kind="listing", to_owner="daejeon", from_centre="brussels"
                )
            ),
            audience=["brussels", "daejeon"],
        ),
        metadata=br.md,
        timeout=10,
    ).record.id
    sync_all(br, dj)
    req = admin_pb2.StepRecordRequest(id=rid, action=records_pb2.LIFECYCLE_ACTION_DECLINE)
    with pytest.raises(grpc.RpcError) as e:
        dj.admin.StepRecord(req, metadata=dj.md, timeout=10)
    assert [f for f, _ in field_violations(e.value)] == ["decline_reason"]
    req.fields.append("decline_reason")
    req.values.interest.decline_reason = "because"
    with pytest.raises(grpc.RpcError) as e:
        dj.admin.StepRecord(req, metadata=dj.md, timeout=10)
    assert "must be one of" in (e.value.details() or "")
    req.values.interest.decline_reason = "no-capacity"
    assert dj.admin.StepRecord(req, metadata=dj.md, timeout=10).record.status == "declined"
    accept = admin_pb2.StepRecordRequest(id=rid, action=records_pb2.LIFECYCLE_ACTION_ACCEPT)
    with pytest.raises(grpc.RpcError) as e:
        dj.admin.StepRecord(accept, metadata=dj.md, timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    sync_all(dj, br)
    assert br.show(rid).values.interest.decline_reason == "no-capacity"
    assert next_status("sent", Action.CLOSE, INTEREST) == "closed"


def _database_bytes(site: Site) -> bytes:
    """Every byte of a site's SQLite store (database and write-ahead log)."""
    data = b""
    for f in sorted(Path(site.path).glob("**/*.db*")):
        data += f.read_bytes()
    return data


def test_erasure_at_the_home_centre_reaches_every_site_and_history_still_verifies(
    network: tuple[Hub, Node, Node, Node],
) -> None:
    hub, br, dj, _ = network
    firm = register_firm(br, "Brussels Biotech SPRL", "BE")
    assert br.show(firm.firm_id).private_note.startswith("Brussels Biotech SPRL contact")
    sync_all(br, dj)
    with FirmClient(firm, open_port(dj)) as c:
        request = c.create("request", request_change("daejeon", ("brussels",)))
    sync_all(dj, br)
    r = cli("firm", "erase", "--data", str(br.path), firm.firm_id, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "erased"
    assert br.show(firm.firm_id).private_note == ""  # the personal data is gone here
    sync_all(br, dj)
    for site in (hub, br, dj):
        view = site.show(firm.firm_id)
        assert view.status == "erased" and view.provenance.verified, site.path.name
        assert site.show(request.id).provenance.verified  # what it signed before still verifies
    with pytest.raises(grpc.RpcError) as e:
        FirmClient(firm, open_port(dj))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "erased" in (e.value.details() or "")
    # A version the firm signs after its erasure is refused on receipt everywhere.
    target = dj.show(request.id)
    late = make_version(
        firm.key,
        site=firm.firm_id,
        record_id=request.id,
        hlc=Stamp(now_ms() + 1000, 0),
        change=Change((("sought", "after erasure"),)),
        parents=tuple(target.heads),
        record_nonce=target.record_nonce,
        kind=REQUEST,
    )
    br_key = SigningKey.load(DataDir(br.path).signing_key)
    resp = push_raw(hub, br.tls, br_key, "brussels", "brussels:late", [envelope_to_pb(countersign(late, br_key))])
    assert resp.stored == 0 and "erased" in resp.rejected[0].reason


def test_the_cli_for_firms_requests_and_interests(network: tuple[Hub, Node, Node, Node], tmp_path: Path) -> None:
    hub, br, dj, _ = network
    key = tmp_path / "acme.key"
    r = cli("firm", "register", "--data", str(hub.path), "--name", "Acme", "--country", "CN", "--out", str(key))
    assert r.returncode == 0, r.stderr
    firm_id = r.stdout.strip().splitlines()[-1]
    assert key.stat().st_mode & 0o777 == 0o600
    r = cli("firm", "register", "--data", str(hub.path), "--name", "Again", "--country", "CN", "--out", str(key))
    assert r.returncode == 1 and "never overwritten" in r.stderr
    r = cli(
        "firm", "register", "--data", str(hub.path), "--name", "", "--country", "China", "--out", str(tmp_path / "x")
    )
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 2  # name and country, one line each
    sync_all(br, dj)
    node = open_port(br)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"title": "", "request_type": "loan", "to": "everyone", "colour": 1}))
    r = cli("request", "submit", "--node", node, "--firm-key", str(key), "--file", str(bad))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) >= 4 and all(line.startswith(f"error: {bad}: ") for line in lines), lines
    assert any("colour: unknown field" in line for line in lines)
    assert any("sought: required field is missing" in line for line in lines)
    sample = Path(__file__).parent.parent / "deploy" / "samples" / "requests" / "machine-vision-partner.json"
    r = cli("request", "submit", "--node", node, "--firm-key", str(key), "--file", str(sample))
    assert r.returncode == 0, r.stderr
    rid = r.stdout.strip().splitlines()[-1]
    r = cli(
        "request", "edit", "--node", node, "--firm-key", str(key), rid, "--set", "deadline_ms=1900000000000", "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["deadline_ms"] == 1900000000000
    r = cli("request", "list", "--node", node, "--firm-key", str(key), "--mine", "--json")
    assert [d["id"] for d in json.loads(r.stdout)] == [rid]
    sync_all(br, dj)
    for step in ("validate", "publish"):
        r = cli("request", step, "--data", str(hub.path), rid, "--json")
        assert r.returncode == 0, r.stderr
    sync_all(br, dj)
    # Daejeon's staff express interest in the request on behalf of a client.
    r = cli("interest", "send", "--data", str(dj.path), "--to", rid, "--client", "Daejeon Vision Co.", "--consent")
    assert r.returncode == 0, r.stderr
    interest = r.stdout.strip().splitlines()[-1]
    sync_all(dj, br)
    r = cli("interest", "list", "--data", str(br.path), "--json")
    (doc,) = json.loads(r.stdout)
    assert doc["id"] == interest and doc["title"].startswith("interest in: Machine-vision")
    # The firm sees the interest in its request, and Brussels (where it came through) handles it.
    r = cli("interest", "list", "--node", node, "--firm-key", str(key), "--json")
    assert [d["id"] for d in json.loads(r.stdout)] == [interest]
    r = cli("interest", "decline", "--data", str(br.path), interest, "--reason", "not-relevant", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "declined", r.stderr
    r = cli("request", "withdraw", "--node", node, "--firm-key", str(key), rid, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "withdrawn", r.stderr
    assert firm_id


def _push_as(site: Node, hub: Hub, txn: str, version: Version) -> sync_pb2.PushResponse:
    key = SigningKey.load(DataDir(site.path).signing_key)
    return push_raw(hub, site.tls, key, site.path.name, txn, [envelope_to_pb(version)])


def test_ignored_steps_set_no_fields_and_fixed_fields_stay_fixed(network: tuple[Hub, Node, Node, Node]) -> None:
    """Review findings: a step the merge ignores must not leave its fields behind, and no
    second create can change a record's fixed fields (a firm's key, an offer's validity)."""
    hub, br, dj, _ = network
    offer = dj.add_record("Edge AI chip")
    firm = register_firm(hub, "Shenzhen Robotics Ltd")
    sync_all(dj, br)
    with FirmClient(firm, open_port(br)) as c:
        values: dict[str, FieldValue] = {
            "to_record": offer,
            "to_kind": "listing",
            "to_owner": "daejeon",
            "from_centre": "brussels",
        }
        interest = c.create("interest", create_change(make_content(INTEREST, values, "sent"), ("brussels", "daejeon")))
    sync_all(br, dj)
    # Brussels (not the handler) signs an introduction with a made-up identity: stored, counts for nothing.
    view = br.show(interest.id)
    br_key = SigningKey.load(DataDir(br.path).signing_key)
    fake = make_version(
        br_key,
        site="brussels",
        origin=firm.firm_id,
        record_id=interest.id,
        hlc=Stamp(now_ms(), 0),
        change=Change((("owner_identity", "FAKE"),), Action.INTRODUCE, "introduced"),
        parents=tuple(view.heads),
        record_nonce=view.record_nonce,
        kind=INTEREST,
    )
    assert _push_as(br, hub, "brussels:fake", fake).stored == 1
    sync_all(br, dj)
    for site in (hub, dj):
        got = site.show(interest.id)
        assert got.status == "sent" and got.values.interest.owner_identity == "", site.path.name
    # Daejeon signs an extension of an offer that is only submitted: its date does not move.
    before = dj.show(offer)
    far = now_ms() + 100 * 365 * DAY_MS
    bad_extend = make_version(
        SigningKey.load(DataDir(dj.path).signing_key),
        site="daejeon",
        record_id=offer,
        hlc=Stamp(now_ms(), 0),
        change=Change((("valid_until_ms", far),), Action.EXTEND, "published"),
        parents=tuple(before.heads),
        record_nonce=before.record_nonce,
        kind=LISTING,
    )
    assert _push_as(dj, hub, "daejeon:extend", bad_extend).stored == 1
    after = hub.show(offer)
    assert after.status == "submitted" and after.values.listing.valid_until_ms == before.values.listing.valid_until_ms
    # HQ re-creates the firm record under the same id with a key it holds: refused.
    mine = SigningKey.generate()
    fields: dict[str, FieldValue] = {
        "name": "Shenzhen Robotics Ltd",
        "country": "CN",
        "public_key": mine.public_bytes.hex(),
    }
    hub_key = SigningKey.load(DataDir(hub.path).signing_key)
    held = hub.show(firm.firm_id)
    again = make_version(
        hub_key,
        site="hq",
        record_id=firm.firm_id,
        hlc=Stamp(now_ms() + 1000, 0),
        change=create_change(make_content(FIRM, fields, "active")),
        record_nonce=held.record_nonce,
        kind=FIRM,
    )
    assert hub.running is not None
    checked = hub.running.site.check_entries([(1, again.body, again.signatures)])
    assert checked[0].rejection is not None and "other fixed fields" in checked[0].rejection.reason
    # A request created through Brussels but countersigned by Daejeon: refused.
    change = request_change("brussels", ())
    rid, nonce = new_record_id(firm.firm_id, now_ms(), pins_of(REQUEST, change))
    own = make_version(
        firm.key,
        site=firm.firm_id,
        record_id=rid,
        hlc=Stamp(now_ms(), 0),
        change=change,
        record_nonce=nonce,
        kind=REQUEST,
    )
    misrelayed = countersign(own, SigningKey.load(DataDir(dj.path).signing_key))
    resp = _push_as(dj, hub, "daejeon:relay", misrelayed)
    assert resp.stored == 0 and "relayed by daejeon" in resp.rejected[0].reason


def test_an_interest_names_the_centre_that_handles_its_target(network: tuple[Hub, Node, Node, Node]) -> None:
    hub, br, dj, _ = network
    offer = dj.add_record("Edge AI chip")
    firm = register_firm(hub, "Shenzhen Robotics Ltd")
    sync_all(dj, br)
    with FirmClient(firm, open_port(br)) as c:
        values: dict[str, FieldValue] = {
            "to_record": offer,
            "to_kind": "listing",
            "to_owner": "brussels",  # not the offer's owner
            "from_centre": "brussels",
        }
        with pytest.raises(grpc.RpcError) as e:
            c.create("interest", create_change(make_content(INTEREST, values, "sent"), ("brussels",)))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(e.value) == [("to_owner", f"{offer} is handled by daejeon")]


def test_hq_may_extend_an_offer(network: tuple[Hub, Node, Node, Node]) -> None:
    hub, _, dj, _ = network
    offer = dj.add_record("Edge AI chip")
    dj.sync()
    for site, action in ((hub, records_pb2.LIFECYCLE_ACTION_VALIDATE), (dj, records_pb2.LIFECYCLE_ACTION_PUBLISH)):
        site.admin.StepRecord(admin_pb2.StepRecordRequest(id=offer, action=action), metadata=site.md, timeout=10)
        dj.sync()
    req = admin_pb2.StepRecordRequest(id=offer, action=records_pb2.LIFECYCLE_ACTION_EXTEND, fields=["valid_until_ms"])
    req.values.listing.valid_until_ms = hub.show(offer).values.listing.valid_until_ms + 90 * DAY_MS
    extended = hub.admin.StepRecord(req, metadata=hub.md, timeout=10).record
    assert extended.extended and extended.status == "published"


def firm_registered_at_brussels(
    br_key: SigningKey, name: str, requests: int, title: str
) -> tuple[Version, list[Version]]:
    """A firm's record as Brussels registers it (signed by Brussels), and `requests` requests
    the firm signs with the key the record carries, relayed by Brussels."""
    firm_key = SigningKey.generate()
    fields = {"name": name, "country": "BE", "public_key": firm_key.public_bytes.hex()}
    firm_change = create_change(make_content(FIRM, fields, "active"))
    firm_id, firm_nonce = new_record_id("brussels", now_ms(), pins_of(FIRM, firm_change))
    firm = make_version(
        br_key,
        site="brussels",
        record_id=firm_id,
        hlc=Stamp(now_ms(), 0),
        change=firm_change,
        record_nonce=firm_nonce,
        kind=FIRM,
    )
    leaning = []
    for i in range(requests):
        change = request_change("brussels", (), title=f"{title} {i}")
        rid, nonce = new_record_id(firm_id, now_ms(), pins_of(REQUEST, change))
        v = make_version(
            firm_key,
            site=firm_id,
            record_id=rid,
            hlc=Stamp(now_ms(), i),
            change=change,
            record_nonce=nonce,
            kind=REQUEST,
        )
        leaning.append(countersign(v, br_key))
    return firm, leaning


def forged(version: Version) -> Version:
    """`version` with its first signature's first byte flipped."""
    sig = version.signatures[0]
    bad = bytes([sig.signature[0] ^ 1]) + sig.signature[1:]
    return dataclasses.replace(version, signatures=(dataclasses.replace(sig, signature=bad), *version.signatures[1:]))


def test_a_forged_firm_record_lends_its_key_to_nothing_in_a_batch_verified_at_once(
    network: tuple[Hub, Node, Node, Node],
) -> None:
    """A batch large enough to be verified on the pool: a firm record whose signature is
    forged comes first, then requests signed with the key it carries. The signatures are
    checked after the firm was taken as known, so the batch is checked again one by one:
    the firm record and every request leaning on it are refused, the rest stored."""
    hub, br, _, _ = network
    assert hub.running is not None
    br_key = SigningKey.load(DataDir(br.path).signing_key)
    firm, requests = firm_registered_at_brussels(br_key, "Forged Ltd", 40, "Leaning on a forged firm")
    firm = forged(firm)
    listings = [
        make_version(
            br_key, site="brussels", record_id=rid, hlc=Stamp(now_ms(), 0), change=ch, record_nonce=n, kind=LISTING
        )
        for ch in [create_change(listing_content(title=f"Honest offer {i}")) for i in range(10)]
        for rid, n in [new_record_id("brussels", now_ms(), pins_of(LISTING, ch))]
    ]
    batch = [firm, *requests, *listings]
    assert sum(len(v.signatures) for v in batch) >= 64  # verified on the pool (sync.signing.PARALLEL_MIN)
    checked = hub.running.site.check_entries([(i, v.body, v.signatures) for i, v in enumerate(batch, 1)])
    accepted = [c.version.record_id for c in checked if c.version is not None]
    reasons = [c.rejection.reason for c in checked if c.rejection is not None]
    assert sorted(accepted) == sorted(v.record_id for v in listings)
    assert len(reasons) == 41 and reasons[0] == "signature does not verify over the body bytes"


def test_a_firm_registered_in_one_batch_is_known_to_the_next_checked_ahead_of_the_store(
    network: tuple[Hub, Node, Node, Node],
) -> None:
    """Batches are checked ahead of the store (`checked_ahead`): a firm registered in one
    batch signs requests in the next, which is checked before the first is stored. The
    requests are accepted; the same batch checked alone is refused (the firm is unknown
    to the store); and a forged firm lends its key to nothing in the batches after it."""
    hub, br, _, _ = network
    assert hub.running is not None
    site = hub.running.site
    br_key = SigningKey.load(DataDir(br.path).signing_key)

    def entries(vs: list[Version]) -> list[tuple[int, bytes, tuple[SignatureValue, ...]]]:
        return [(i, v.body, v.signatures) for i, v in enumerate(vs, 1)]

    firm, requests = firm_registered_at_brussels(br_key, "Registered Ltd", 3, "Registered Ltd request")
    alone = site.check_entries(entries(requests))
    assert all(c.rejection is not None for c in alone)
    got = [checked for _, _, checked in checked_ahead(site, iter([[firm], requests]), entries)]
    assert [c.version is not None for c in got[0]] == [True]
    assert [c.version is not None for c in got[1]] == [True, True, True]

    bad_firm, leaning = firm_registered_at_brussels(br_key, "Forged Ltd", 3, "Forged Ltd request")
    got = [checked for _, _, checked in checked_ahead(site, iter([[forged(bad_firm)], leaning]), entries)]
    assert got[0][0].rejection is not None
    assert all(c.rejection is not None for c in got[1])


def test_requests_checked_ahead_of_their_firm_are_checked_again_once_it_is_stored(
    network: tuple[Hub, Node, Node, Node],
) -> None:
    """A batch checked ahead before the batch registering its firm was accepted (as when
    that firm's centre enrolled mid-round and the firm was taken only after the newer
    registry came): when it is stored, the firm is held, and the requests refused ahead for
    an unknown firm are checked again and accepted."""
    hub, br, _, _ = network
    assert hub.running is not None
    site = hub.running.site
    br_key = SigningKey.load(DataDir(br.path).signing_key)
    firm, requests = firm_registered_at_brussels(br_key, "Late Ltd", 3, "Late Ltd request")
    entries = [(i, v.body, v.signatures) for i, v in enumerate(requests, 2)]
    ahead = site.check_entries(entries)
    assert all(c.unknown_key for c in ahead)
    receive(site, "brussels", [(1, firm.body, firm.signatures)], through_seq=1, head_seq=4)
    batch = receive(site, "brussels", entries, through_seq=4, head_seq=4, checked=ahead)
    assert len(batch.accepted) == 3 and not batch.rejected

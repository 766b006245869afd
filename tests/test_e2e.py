"""A hub and four centre nodes converge on the same signed listings."""

from __future__ import annotations

from tests.harness import Hub, Node


def test_four_nodes_and_hub_converge(network: tuple[Hub, dict[str, Node]]) -> None:
    hub, nodes = network
    added: dict[str, str] = {}
    for centre, node in nodes.items():
        for i in range(3):
            added[node.add_record(f"{centre} technology {i}", summary="s", keywords=["sensors"], trl=5)] = centre
    hub_own = hub.add_record("HQ's own listing")
    added[hub_own] = "hq"

    # Round 1 pushes every centre's listings; round 2 brings each the others'.
    for _ in range(2):
        for node in nodes.values():
            node.sync()

    expected = {rid: origin for rid, origin in added.items()}
    for site in [hub, *nodes.values()]:
        views = site.listings()
        assert {v.id: v.provenance.origin for v in views} == expected
        assert all(v.provenance.verified for v in views)

    # Daejeon sees a Tel Aviv listing with its provenance, verified against Tel Aviv's key.
    ta_id = next(rid for rid, o in added.items() if o == "tel-aviv")
    at_daejeon = nodes["daejeon"].show(ta_id)
    at_origin = nodes["tel-aviv"].show(ta_id)
    assert at_daejeon.provenance.origin == "tel-aviv"
    assert at_daejeon.provenance.author == "tel-aviv"
    assert at_daejeon.provenance.verified
    assert at_daejeon.provenance.key_id == at_origin.provenance.key_id
    assert at_daejeon.provenance.version_id == at_origin.provenance.version_id
    assert at_daejeon.provenance.received_from == "hq"
    assert at_origin.provenance.received_from == ""

    # A third round moves nothing: idempotent, nothing doubled.
    for node in nodes.values():
        r = node.sync()
        assert (r.pushed, r.pulled) == (0, 0)
    assert len(hub.listings()) == len(expected)


def test_listing_filter_by_centre(network: tuple[Hub, dict[str, Node]]) -> None:
    hub, nodes = network
    nodes["toledo"].add_record("Toledo one")
    nodes["brussels"].add_record("Brussels one")
    for n in nodes.values():
        n.sync()
    assert [v.values.listing.title for v in hub.listings(origin="toledo")] == ["Toledo one"]

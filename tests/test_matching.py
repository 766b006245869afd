"""The matching score (transfer.matching.score_pair): a pure function of two contents,
the same for the same pair, each part reported with what it found; keywords carry a
match across languages, and a hard negative (the same word, another need) scores below
the offer that fits. What the score reads of an offer, remembered, is what a fresh
reading gives, and an offer that changed is read afresh."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.clock import Stamp
from sync.kinds import Content, FieldValue, make_content
from sync.merge import RecordState, state_to_json
from sync.store import RecordRow
from transfer.matching import WEIGHTS, OfferTerms, OfferTermsCache, RequestTerms, score_pair, score_terms
from transfer.records import KINDS, LISTING, REQUEST

T = "tt-2026.1"


def request(**values: FieldValue) -> Content:
    base: dict[str, FieldValue] = {"title": "", "request_type": "technology", "sought": "x", "via": "brussels"}
    return make_content(REQUEST, {**base, "taxonomy": T, **values}, "submitted")


def offer(**values: FieldValue) -> Content:
    return make_content(LISTING, {**LISTING.defaults, "taxonomy": T, **values}, "submitted")


VISION = request(
    title="Machine-vision partner for welding robots",
    request_type="partner",
    sought="A camera system that finds weld seams on car bodies",
    keywords=("robotics", "artificial-intelligence"),
    sectors=("automotive",),
)


def test_each_part_says_what_it_found() -> None:
    fit = offer(
        title="Seam-tracking vision for robotic welding",
        summary="Cameras and AI that follow weld seams",
        keywords=("robotics", "artificial-intelligence"),
        market_keywords=("automotive",),
        partnership_types=("joint-venture",),
    )
    s = score_pair(VISION, fit, firm_country="CN")
    why = {r.part: r for r in s.reasons}
    assert why["keywords"].detail == "artificial-intelligence, robotics"
    assert why["keywords"].points == WEIGHTS["keywords"]
    assert why["market"].detail == "automotive"
    assert why["partnership"].detail == "partner: joint-venture"
    assert why["countries"].detail == "open to every country"
    assert {"welding", "seams", "vision"} <= set(why["words"].detail.replace(",", "").split())
    assert s.score == round(sum(r.points for r in s.reasons), 6) and 0 < s.score <= 1


def test_a_hard_negative_scores_below_the_offer_that_fits() -> None:
    fit = offer(
        title="Edge AI camera for weld inspection",
        keywords=("artificial-intelligence", "robotics"),
        partnership_types=("technical-cooperation",),
    )
    same_word = offer(
        title="Welding robots for shipyards, for sale",
        summary="Heavy gantry welding robots",
        keywords=("robotics",),
        partnership_types=("acquisition",),
    )
    assert score_pair(VISION, fit).score > score_pair(VISION, same_word).score


def test_keywords_carry_a_match_across_languages() -> None:
    zh = offer(title="焊缝跟踪机器视觉系统", keywords=("robotics", "artificial-intelligence"))
    ko = offer(
        title="로봇용접 비전 시스템",
        keywords=("robotics",),
        translations=(("en", "Vision for welding robots", "", ""),),
    )
    assert score_pair(VISION, zh).score >= WEIGHTS["keywords"]
    words = {r.part: r.detail for r in score_pair(VISION, ko).reasons}["words"]
    assert "welding" in words and "robots" in words  # through the English translation


def test_a_technology_request_counts_maturity_and_countries() -> None:
    rq = request(title="Desalination membranes", request_type="technology", keywords=("membranes",))
    ripe = offer(title="Desalination membranes", keywords=("membranes",), trl=9, target_countries=("CN",))
    early = offer(title="Desalination membranes", keywords=("membranes",), trl=3, target_countries=("DE",))
    a = {r.part: r for r in score_pair(rq, ripe, firm_country="CN").reasons}
    b = {r.part: r for r in score_pair(rq, early, firm_country="CN").reasons}
    assert a["maturity"].points > b["maturity"].points and a["countries"].detail == "open to CN"
    assert "countries" not in b


words = st.sampled_from(["solar", "membrane", "robot", "vision", "淡化", "海水", "로봇", "sensor", "battery", "weld"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(words, max_size=6), st.lists(words, max_size=6), st.sampled_from(["technology", "partner", "investment"])
)
def test_the_score_is_a_pure_function_of_the_pair(rq_words: list[str], of_words: list[str], kind: str) -> None:
    rq = request(title=" ".join(rq_words), request_type=kind)
    of = offer(title=" ".join(of_words), partnership_types=("licence", "investment"))
    first = score_pair(rq, of, firm_country="KR")
    again = score_pair(
        make_content(REQUEST, rq.as_dict(), "submitted"),
        make_content(LISTING, of.as_dict(), "submitted"),
        firm_country="KR",
    )
    assert first == again
    assert 0 <= first.score <= 1


def row_of(content: Content, head: str = "v1") -> RecordRow:
    """A record row holding `content` as its merged state, `head` its newest head."""
    state = RecordState(content, False, (head,), (), (), 1, Stamp(1, 0), head)
    return RecordRow(
        "r1", content.kind, "hq", "", content.status, 1, head, 1, state_json=state_to_json(state), kinds=KINDS
    )


def test_the_terms_of_an_offer_are_remembered_by_its_state_and_never_stale() -> None:
    cache = OfferTermsCache(2)
    welding = offer(
        title="Seam-tracking vision for robotic welding",
        summary="Cameras that follow weld seams",
        keywords=("robotics",),
        translations=(("zh", "焊缝跟踪机器视觉", "", ""),),
        trl=7,
        target_countries=("CN",),
    )
    first = cache.of(row_of(welding))
    assert first == OfferTerms.of(welding) and cache.of(row_of(welding)) is first
    assert {"weld", "seam", "焊缝", "robot"} <= first.words and first.trl == 7 and first.targets == ("CN",)
    # The same record edited, with the same newest head: read afresh, not as remembered.
    edited = offer(title="Metal hydride tank for hydrogen storage", keywords=("robotics",), trl=7)
    again = cache.of(row_of(edited))
    assert again == OfferTerms.of(edited) and "hydrogen" in again.words and "weld" not in again.words
    rq = RequestTerms.of(VISION)
    assert score_terms(rq, again, firm_country="CN") == score_pair(VISION, edited, firm_country="CN")
    assert score_terms(rq, first).score > score_terms(rq, again).score
    # At most its size, the least recently used out.
    cache.of(row_of(welding))
    cache.of(row_of(offer(title="Solar panel cleaning robot")))
    assert len(cache) == 2 and cache.of(row_of(welding)) is first
    assert cache.of(row_of(edited)) is not again and cache.of(row_of(edited)) == again


def test_duplicates_by_text_patent_and_translation_and_not_by_a_shared_keyword() -> None:
    from transfer.duplicates import THRESHOLD, similarity

    original = offer(
        title="Low-energy seawater desalination membrane",
        summary="Graphene-oxide membrane that halves the energy of desalination",
        keywords=("membranes",),
        patents=("EP3100000B1",),
    )
    copy = offer(
        title="LOW-ENERGY SEAWATER DESALINATION MEMBRANES.",
        summary="Graphene oxide membranes halving desalination energy",
    )
    patent = offer(title="低能耗海水淡化膜", patents=("EP 3 100 000 B1",))
    translated = offer(
        title="Membrana de desalinización de bajo consumo",
        translations=(
            (
                "en",
                "Low-energy seawater desalination membrane",
                "Graphene-oxide membrane that halves the energy of desalination",
                "",
            ),
        ),
    )
    keyword_only = offer(title="Hollow-fibre membrane for haemodialysis", keywords=("membranes",))
    for dup, why in ((copy, "text"), (patent, "the same patent: EP3100000B1"), (translated, "a translation")):
        s = similarity(original, dup)
        assert s.score >= THRESHOLD and any(r.startswith(why) for r in s.reasons), (why, s)
    assert similarity(original, keyword_only).score < THRESHOLD
    assert similarity(original, copy) == similarity(original, copy)

"""The versioned keyword taxonomy offers and requests are described with.

A record names the taxonomy version its keywords come from (`taxonomy`
field); every site checks its keywords against that version, so a term
removed in a later version does not invalidate an older record. Versions are
only ever added here, never edited: a record's validity must not change
under it.

Technology terms loosely follow the technology areas of the Enterprise
Europe Network's partnering profiles and WIPO GREEN's categories; market
terms the market sectors. Terms are lowercase slugs so they compare exactly.
"""

from __future__ import annotations

CURRENT = "tt-2026.1"

_TECHNOLOGY_2026_1 = frozenset(
    {
        "additive-manufacturing",
        "advanced-materials",
        "agritech",
        "artificial-intelligence",
        "batteries",
        "big-data",
        "biotechnology",
        "carbon-capture",
        "cybersecurity",
        "desalination",
        "diagnostics",
        "drones",
        "electronics",
        "energy-efficiency",
        "fintech",
        "food-processing",
        "hydrogen",
        "internet-of-things",
        "lasers",
        "medical-devices",
        "membranes",
        "nanotechnology",
        "pharmaceuticals",
        "photonics",
        "precision-irrigation",
        "quantum",
        "recycling",
        "robotics",
        "semiconductors",
        "sensors",
        "smart-grid",
        "software",
        "solar-energy",
        "space",
        "telecommunications",
        "textiles",
        "water-treatment",
        "wind-energy",
    }
)

_MARKET_2026_1 = frozenset(
    {
        "aerospace",
        "agriculture",
        "automotive",
        "chemicals",
        "construction",
        "consumer-goods",
        "defence",
        "education",
        "energy",
        "environment",
        "finance",
        "food-and-beverage",
        "healthcare",
        "ict",
        "logistics",
        "manufacturing",
        "maritime",
        "mining",
        "public-sector",
        "retail",
        "tourism",
        "utilities",
    }
)

# version -> (technology terms, market terms)
VERSIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    CURRENT: (_TECHNOLOGY_2026_1, _MARKET_2026_1),
}


def technology_terms(version: str) -> frozenset[str] | None:
    found = VERSIONS.get(version)
    return found[0] if found else None


def market_terms(version: str) -> frozenset[str] | None:
    found = VERSIONS.get(version)
    return found[1] if found else None

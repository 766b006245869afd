"""Regenerate console/static/world.svg and console/static/centroids.json from a TopoJSON world file.

Usage: python scripts/make_world_map.py package/countries-110m.json

The input is ``countries-110m.json`` from the npm package ``world-atlas`` 2.x
(Natural Earth 1:110m admin-0 countries, public domain). Get it with
``npm pack world-atlas@2 && tar xzf world-atlas-*.tgz``.

Coordinates are projected equirectangularly onto a 1000x500 box
(x = (lon + 180) / 360 * 1000, y = (90 - lat) / 180 * 500) and rounded to one
decimal. Arcs are simplified after projection by dropping consecutive points
closer than MIN_STEP px; simplifying the shared arcs (not the rings) keeps
neighbouring borders identical. Centroids are the area-weighted centroid of each
country's largest polygon, computed from the unsimplified coordinates.
Stdlib only.
"""

from __future__ import annotations

import json
import math
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

ROOT = Path(__file__).resolve().parent.parent
SVG_OUT = ROOT / "console" / "static" / "world.svg"
CENTROIDS_OUT = ROOT / "console" / "static" / "centroids.json"

WIDTH = 1000.0
HEIGHT = 500.0
MIN_STEP = 0.6

Point = tuple[float, float]
Ring = list[Point]
Polygon = list[Ring]

# ISO 3166-1 numeric -> alpha-2 for every country in Natural Earth 1:110m (world-atlas 2.x).
NUMERIC_TO_ALPHA2: dict[str, str] = {
    "004": "AF",
    "008": "AL",
    "010": "AQ",
    "012": "DZ",
    "024": "AO",
    "031": "AZ",
    "032": "AR",
    "036": "AU",
    "040": "AT",
    "044": "BS",
    "050": "BD",
    "051": "AM",
    "056": "BE",
    "064": "BT",
    "068": "BO",
    "070": "BA",
    "072": "BW",
    "076": "BR",
    "084": "BZ",
    "090": "SB",
    "096": "BN",
    "100": "BG",
    "104": "MM",
    "108": "BI",
    "112": "BY",
    "116": "KH",
    "120": "CM",
    "124": "CA",
    "140": "CF",
    "144": "LK",
    "148": "TD",
    "152": "CL",
    "156": "CN",
    "158": "TW",
    "170": "CO",
    "178": "CG",
    "180": "CD",
    "188": "CR",
    "191": "HR",
    "192": "CU",
    "196": "CY",
    "203": "CZ",
    "204": "BJ",
    "208": "DK",
    "214": "DO",
    "218": "EC",
    "222": "SV",
    "226": "GQ",
    "231": "ET",
    "232": "ER",
    "233": "EE",
    "238": "FK",
    "242": "FJ",
    "246": "FI",
    "250": "FR",
    "260": "TF",
    "262": "DJ",
    "266": "GA",
    "268": "GE",
    "270": "GM",
    "275": "PS",
    "276": "DE",
    "288": "GH",
    "300": "GR",
    "304": "GL",
    "320": "GT",
    "324": "GN",
    "328": "GY",
    "332": "HT",
    "340": "HN",
    "348": "HU",
    "352": "IS",
    "356": "IN",
    "360": "ID",
    "364": "IR",
    "368": "IQ",
    "372": "IE",
    "376": "IL",
    "380": "IT",
    "384": "CI",
    "388": "JM",
    "392": "JP",
    "398": "KZ",
    "400": "JO",
    "404": "KE",
    "408": "KP",
    "410": "KR",
    "414": "KW",
    "417": "KG",
    "418": "LA",
    "422": "LB",
    "426": "LS",
    "428": "LV",
    "430": "LR",
    "434": "LY",
    "440": "LT",
    "442": "LU",
    "450": "MG",
    "454": "MW",
    "458": "MY",
    "466": "ML",
    "478": "MR",
    "484": "MX",
    "496": "MN",
    "498": "MD",
    "499": "ME",
    "504": "MA",
    "508": "MZ",
    "512": "OM",
    "516": "NA",
    "524": "NP",
    "528": "NL",
    "540": "NC",
    "548": "VU",
    "554": "NZ",
    "558": "NI",
    "562": "NE",
    "566": "NG",
    "578": "NO",
    "586": "PK",
    "591": "PA",
    "598": "PG",
    "600": "PY",
    "604": "PE",
    "608": "PH",
    "616": "PL",
    "620": "PT",
    "624": "GW",
    "626": "TL",
    "630": "PR",
    "634": "QA",
    "642": "RO",
    "643": "RU",
    "646": "RW",
    "682": "SA",
    "686": "SN",
    "688": "RS",
    "694": "SL",
    "703": "SK",
    "704": "VN",
    "705": "SI",
    "706": "SO",
    "710": "ZA",
    "716": "ZW",
    "724": "ES",
    "728": "SS",
    "729": "SD",
    "732": "EH",
    "740": "SR",
    "748": "SZ",
    "752": "SE",
    "756": "CH",
    "760": "SY",
    "762": "TJ",
    "764": "TH",
    "768": "TG",
    "780": "TT",
    "784": "AE",
    "788": "TN",
    "792": "TR",
    "795": "TM",
    "800": "UG",
    "804": "UA",
    "807": "MK",
    "818": "EG",
    "826": "GB",
    "834": "TZ",
    "840": "US",
    "854": "BF",
    "858": "UY",
    "860": "UZ",
    "862": "VE",
    "887": "YE",
    "894": "ZM",
}

# For features whose id is missing or "-99" in some Natural Earth builds. None = no ISO code (drawn, not tagged).
NAME_TO_ALPHA2: dict[str, str | None] = {
    "France": "FR",
    "Norway": "NO",
    "Kosovo": "XK",
    "N. Cyprus": None,
    "Somaliland": None,
}


def iso_code(geometry: dict[str, Any]) -> str | None:
    raw = geometry.get("id")
    if isinstance(raw, int):
        raw = f"{raw:03d}"
    if isinstance(raw, str) and raw in NUMERIC_TO_ALPHA2:
        return NUMERIC_TO_ALPHA2[raw]
    name = geometry.get("properties", {}).get("name")
    if isinstance(name, str) and name in NAME_TO_ALPHA2:
        return NAME_TO_ALPHA2[name]
    print(f"warning: no ISO code for id={raw!r} name={name!r}", file=sys.stderr)
    return None


def project(lon: float, lat: float) -> Point:
    return ((lon + 180.0) / 360.0 * WIDTH, (90.0 - lat) / 180.0 * HEIGHT)


def decode_arcs(topology: dict[str, Any]) -> list[Ring]:
    """Dequantize and delta-decode every arc, then project it."""
    transform = topology.get("transform")
    arcs: list[Ring] = []
    for arc in topology["arcs"]:
        points: Ring = []
        if transform is None:
            for position in arc:
                points.append(project(float(position[0]), float(position[1])))
        else:
            sx, sy = (float(v) for v in transform["scale"])
            tx, ty = (float(v) for v in transform["translate"])
            qx = qy = 0
            for position in arc:
                qx += int(position[0])
                qy += int(position[1])
                points.append(project(qx * sx + tx, qy * sy + ty))
        arcs.append(points)
    return arcs


def simplify(arc: Ring) -> Ring:
    """Drop points closer than MIN_STEP to the last kept one; always keep both endpoints."""
    if len(arc) <= 2:
        return list(arc)
    kept: Ring = [arc[0]]
    for point in arc[1:-1]:
        last = kept[-1]
        if math.hypot(point[0] - last[0], point[1] - last[1]) >= MIN_STEP:
            kept.append(point)
    end = arc[-1]
    if len(kept) > 1 and math.hypot(end[0] - kept[-1][0], end[1] - kept[-1][1]) < MIN_STEP:
        kept.pop()
    kept.append(end)
    return kept


def stitch(indices: list[int], arcs: list[Ring]) -> Ring:
    """Join arcs into a ring; a negative index ~i means arc i reversed."""
    ring: Ring = []
    for index in indices:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        ring.extend(arc if not ring else arc[1:])
    return ring


def clip_x(ring: Ring, edge: float, keep_below: bool) -> Ring:
    """Sutherland-Hodgman clip of a closed ring against the vertical line x = edge."""

    def inside(point: Point) -> bool:
        return point[0] <= edge if keep_below else point[0] >= edge

    out: Ring = []
    n = len(ring)
    for i in range(n):
        cur, nxt = ring[i], ring[(i + 1) % n]
        if inside(cur):
            out.append(cur)
        if inside(cur) != inside(nxt):
            t = (edge - cur[0]) / (nxt[0] - cur[0])
            out.append((edge, cur[1] + t * (nxt[1] - cur[1])))
    return out


def split_antimeridian(ring: Ring) -> list[Ring]:
    """Natural Earth rings may jump across lon +-180 (d3 cuts them on the sphere; a flat map must do it here).

    A ring with an even number of jumps (an island straddling the antimeridian: Fiji, Chukotka) is
    unwrapped and clipped into one piece per side. An odd number means the ring circles a pole
    (Antarctica): its jump already runs along the bottom of the map, so it is left as it is.
    """
    jumps = sum(1 for a, b in zip(ring, ring[1:] + ring[:1], strict=True) if abs(b[0] - a[0]) > WIDTH / 2)
    if jumps == 0 or jumps % 2:
        return [ring]
    unwrapped: Ring = [ring[0]]
    shift = 0.0
    for prev, point in pairwise(ring):
        dx = point[0] - prev[0]
        if dx > WIDTH / 2:
            shift -= WIDTH
        elif dx < -WIDTH / 2:
            shift += WIDTH
        unwrapped.append((point[0] + shift, point[1]))
    pieces: list[Ring] = []
    for offset in (-WIDTH, 0.0, WIDTH):
        moved = [(x + offset, y) for x, y in unwrapped]
        piece = clip_x(clip_x(moved, 0.0, keep_below=False), WIDTH, keep_below=True)
        if len(piece) >= 3:
            pieces.append(piece)
    return pieces


def flat_polygons(polygons: list[list[list[int]]], arcs: list[Ring]) -> list[Polygon]:
    """Stitch rings and split any polygon whose exterior straddles the antimeridian into one polygon per side."""
    result: list[Polygon] = []
    for polygon in polygons:
        rings = [stitch(ring, arcs) for ring in polygon]
        pieces = split_antimeridian(rings[0])
        if len(pieces) == 1:
            result.append([pieces[0], *(p for hole in rings[1:] for p in split_antimeridian(hole))])
        else:
            # No straddling polygon has holes in the 110m data; should one appear, its holes go with the first piece.
            result.extend([piece] for piece in pieces)
            result[-len(pieces)].extend(p for hole in rings[1:] for p in split_antimeridian(hole))
    return result


def polygons_of(geometry: dict[str, Any]) -> list[list[list[int]]]:
    kind = geometry.get("type")
    if kind == "Polygon":
        return [geometry["arcs"]]
    if kind == "MultiPolygon":
        return list(geometry["arcs"])
    return []


def signed_area_and_moment(ring: Ring) -> tuple[float, float, float]:
    """Shoelace: (signed area, sum for cx, sum for cy) of a ring (closing edge implied)."""
    area = mx = my = 0.0
    n = len(ring)
    for i in range(n):
        x0, y0 = ring[i]
        x1, y1 = ring[(i + 1) % n]
        cross = x0 * y1 - x1 * y0
        area += cross
        mx += (x0 + x1) * cross
        my += (y0 + y1) * cross
    return area / 2.0, mx, my


def polygon_centroid(polygon: Polygon) -> tuple[float, Point]:
    """(area, centroid) of a polygon with holes; holes subtract whatever their winding."""
    total = mx = my = 0.0
    for k, ring in enumerate(polygon):
        area, rx, ry = signed_area_and_moment(ring)
        # Orient the exterior positive and holes negative, independent of input winding.
        sign = (1.0 if area >= 0 else -1.0) * (1.0 if k == 0 else -1.0)
        total += sign * area
        mx += sign * rx
        my += sign * ry
    if total <= 0:
        xs = [p[0] for p in polygon[0]]
        ys = [p[1] for p in polygon[0]]
        return 0.0, (sum(xs) / len(xs), sum(ys) / len(ys))
    return total, (mx / (6.0 * total), my / (6.0 * total))


def fmt(value: float) -> str:
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def ring_path(ring: Ring) -> str:
    points = [(fmt(x), fmt(y)) for x, y in ring]
    deduped: list[tuple[str, str]] = []
    for point in points:
        if not deduped or deduped[-1] != point:
            deduped.append(point)
    if len(deduped) > 1 and deduped[0] == deduped[-1]:
        deduped.pop()
    if len(set(deduped)) < 3:
        return ""
    head, *rest = deduped
    return f"M{head[0]} {head[1]}L" + " ".join(f"{x} {y}" for x, y in rest) + "Z"


def build(topology: dict[str, Any]) -> tuple[str, dict[str, list[float]]]:
    full_arcs = decode_arcs(topology)
    small_arcs = [simplify(arc) for arc in full_arcs]
    paths: list[str] = []
    centroids: dict[str, list[float]] = {}
    for geometry in topology["objects"]["countries"]["geometries"]:
        polygons = polygons_of(geometry)
        if not polygons:
            continue
        code = iso_code(geometry)
        d = "".join(ring_path(ring) for polygon in flat_polygons(polygons, small_arcs) for ring in polygon)
        if not d:
            continue
        attrs = f" data-iso={quoteattr(code)}" if code else ""
        paths.append(f'<path{attrs} d="{d}"/>')
        if code:
            best = max(
                (polygon_centroid(polygon) for polygon in flat_polygons(polygons, full_arcs)),
                key=lambda item: item[0],
            )
            cx, cy = best[1]
            centroids[code] = [round(cx, 1), round(cy, 1)]
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000 500">\n'
        '<g id="world" fill="#dfe6ee" stroke="#9aa8b8" stroke-width="0.5">\n' + "\n".join(paths) + "\n</g>\n</svg>\n"
    )
    return svg, dict(sorted(centroids.items()))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    topology = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    svg, centroids = build(topology)
    SVG_OUT.parent.mkdir(parents=True, exist_ok=True)
    SVG_OUT.write_text(svg, encoding="utf-8")
    lines = [f"{json.dumps(code)}: {json.dumps(xy)}" for code, xy in sorted(centroids.items())]
    CENTROIDS_OUT.write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")
    print(f"wrote {SVG_OUT} ({len(svg.encode())} bytes), {CENTROIDS_OUT} ({len(centroids)} countries)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

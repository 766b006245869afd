"""Regenerate tests/vectors/version_signatures.json (run when the body format changes).

Usage: python scripts/make_vectors.py

Fixed seeds, nonces and stamps make the output reproducible; the test checks
the vectors with both verifiers and reads them without re-serialising.
"""

from __future__ import annotations

import json
from pathlib import Path

from sync.clock import Stamp
from sync.envelope import make_version
from sync.ids import owned_record_id
from sync.keys import SigningKey
from sync.kinds import FieldValue, create_change, make_content, pins_of
from sync.signing import VERSION_DOMAIN
from transfer.records import LISTING

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "version_signatures.json"
CASES: list[tuple[str, str, Stamp, dict[str, FieldValue]]] = [
    (
        "a904a6dafdb4d2fef75e3c412984b9a06fc82c95e47b323793c5b1d273003032",
        "7e47af158e9db54fc5e4902996f5360a",
        Stamp(1795000000000, 0),
        {
            "title": "Solar-driven desalination membrane",
            "keywords": ("water-treatment", "solar-energy"),
            "taxonomy": "tt-2026.1",
            "trl": 6,
        },
    ),
    (
        "8e7cd8117c8ad80bdc8016f437b2a29127593ba63ce5b817197550741d6b14d5",
        "654e2c87d7820cbeb1b5b550f4316654",
        Stamp(1795000000001, 1),
        {"title": "Ünïcödé — 東京 listing"},
    ),
]


def main() -> None:
    vectors = []
    for seed, nonce_hex, stamp, fields in CASES:
        key = SigningKey.from_seed(bytes.fromhex(seed))
        change = create_change(make_content(LISTING, fields, "submitted"))
        nonce = bytes.fromhex(nonce_hex) + pins_of(LISTING, change)  # 16 random bytes, then the pins
        record_id = owned_record_id("tel-aviv", stamp.wall_ms, nonce)
        v = make_version(
            key, site="tel-aviv", record_id=record_id, hlc=stamp, change=change, record_nonce=nonce, kind=LISTING
        )
        vectors.append(
            {
                "seed": seed,
                "public_key": key.public_bytes.hex(),
                "key_id": key.key_id,
                "domain": VERSION_DOMAIN.decode(),
                "body": v.body.hex(),
                "signature": v.signatures[0].signature.hex(),
                "version_id": v.version_id,
                "fields": {
                    "record_id": record_id,
                    "record_nonce": nonce.hex(),
                    "origin": "tel-aviv",
                    "author": "tel-aviv",
                    "hlc": [stamp.wall_ms, stamp.counter],
                    "title": fields["title"],
                },
            }
        )
    about = (
        "Signed version test vectors: Ed25519 over DOMAIN + body bytes. Verified by cryptography (OpenSSL) "
        "and PyNaCl (libsodium). Made by scripts/make_vectors.py."
    )
    OUT.write_text(json.dumps({"about": about, "vectors": vectors}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {OUT}")


if __name__ == "__main__":
    main()

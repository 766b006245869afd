"""The console's languages: English (the messages as written) and Simplified Chinese.

Catalogues are gettext `.po` files under console/locale, edited by translators and read
with Babel; they are compiled in memory when the console starts (no `.mo` to drift from
its source). `make messages` extracts the messages of the templates and of the console's
Python into console/locale/messages.pot and updates each catalogue from it.
"""

from __future__ import annotations

import io
from functools import cache
from gettext import NullTranslations
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from console.staff import LANGUAGES

LOCALE_DIR = Path(__file__).parent / "locale"


@cache
def translations(language: str) -> NullTranslations:
    """The catalogue of `language` ("en": the messages as written)."""
    if language not in LANGUAGES or language == "en":
        return NullTranslations()
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)

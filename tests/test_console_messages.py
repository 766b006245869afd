"""The console's catalogues: every message of its templates and code has a Chinese
translation, the data words it shows are all marked for translators, and a template
escapes what it is given."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from console import messages
from console.i18n import LOCALE_DIR, translations
from sync.kinds import Action
from transfer.records import KINDS
from transfer.report import FIGURES
from transfer.search import FACETS

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "gettext": None, "N_": None, "t": None}


def _extracted() -> set[str]:
    found: set[str] = set()
    for folder, method in (
        ("console", "python"),
        ("console/templates", "jinja2"),
        ("hub/templates", "jinja2"),
        ("node/templates", "jinja2"),
    ):
        pattern = "**.html" if method == "jinja2" else "**.py"
        options = {"extensions": "jinja2.ext.i18n"} if method == "jinja2" else {}
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder,
            method_map=[(pattern, method)],
            options_map={pattern: options},
            keywords=KEYWORDS,
        ):
            if isinstance(message, str):
                found.add(message)
    for name in ("hub/console_pages.py", "node/console_pages.py"):
        text = (ROOT / name).read_text()
        found.update(re.findall(r'label="([^"]+)"', text))
    return found


def test_every_console_message_has_a_chinese_translation() -> None:
    with (LOCALE_DIR / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="zh")
    translated = {m.id for m in catalog if m.id and m.string}
    missing = sorted(_extracted() - translated)
    assert not missing, f"untranslated (run make messages, then translate): {missing[:20]}"
    assert translations("zh").gettext("Network") == "网络"
    assert translations("en").gettext("Network") == "Network"


def test_the_data_words_shown_are_all_marked_for_translation() -> None:
    marked = {
        *messages.KIND_WORDS,
        *messages.STATUS_WORDS,
        *messages.STEP_WORDS,
        *messages.FIGURE_WORDS,
        *messages.FACET_WORDS,
        *messages.FIELD_WORDS,
    }
    domain = {*KINDS.names, *(a.value for a in Action), *FIGURES, *FACETS}
    for name in KINDS.names:
        domain.update(str(s) for s in KINDS[name].statuses)
        domain.update(KINDS[name].defaults)
    assert sorted(domain - marked) == []

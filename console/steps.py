"""What a lifecycle step asks of the person taking it, for the step buttons of every page."""

from __future__ import annotations

from sync.kinds import Action
from transfer.records import DECLINE_REASONS, DISMISS_REASONS, KINDS

# The choices a step's reason field offers.
REASON_CHOICES = {"decline_reason": DECLINE_REASONS, "dismiss_reason": DISMISS_REASONS}


def step_field(kind_name: str, step: str) -> str:
    """The field a step of this kind must be given ("" for none): the date an extension
    runs to, a reason, who to contact, the interest sent."""
    try:
        wanted = KINDS[kind_name].step_fields.get(Action(step), ())
    except ValueError:
        return ""
    return wanted[0] if wanted else ""

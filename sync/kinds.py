"""What the federation core knows of a record kind, and the rules every kind keeps.

The core (envelopes, codec, merge, store, site) handles records of any kind
a `KindSet` describes; the site that builds it hands it the set (the
technology-transfer domain declares its kinds in `transfer.records`).
A `Kind` is data: its fields with their defaults and rules, its statuses in
rank order, its lifecycle (`Action`s, each legal from some statuses and
taken by some parties), and the few roles a field can play that the core
acts on (the centre that handles a record, the centre a create is relayed
through, a consent a step needs, the record a record points at, when a
record lapses). Nothing here names a kind.

A record's status is never edited: it follows from lifecycle steps, each
legal only from certain statuses (`Kind.transitions`) and taken only by
certain parties (`Kind.rights`). A step may carry the few fields that belong
to it (`Kind.step_fields`).

Validation collects every problem at once, one `FieldViolation` per problem,
so the CLI can print one line each and the server can answer INVALID_ARGUMENT
naming every field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from operator import itemgetter
from typing import Any

import orjson
from google.protobuf.message import Message

from sync.errors import FailedPrecondition, FieldViolation, InvalidInput
from sync.fulltext import SearchDoc

# A field's value: text, a number, a flag, a list of words, or a list of tuples of text.
FieldValue = str | int | bool | tuple[str, ...] | tuple[tuple[str, ...], ...]
# A field rule: the problems with one value (empty when it is fine).
Rule = Callable[[FieldValue], list[str]]
# Rules across the fields a change sets: (all values, names set) -> problems.
SetRule = Callable[[Mapping[str, FieldValue], Iterable[str]], list[FieldViolation]]


class Action(StrEnum):
    """The lifecycle steps a version can take; each kind allows some (its transitions)."""

    CREATE = "create"
    SUBMIT = "submit"
    VALIDATE = "validate"
    PUBLISH = "publish"
    WITHDRAW = "withdraw"
    EXPIRE = "expire"
    ARCHIVE = "archive"
    DELETE = "delete"
    UNDELETE = "undelete"
    SETTLE = "settle"
    EXTEND = "extend"
    FORWARD = "forward"
    ACCEPT = "accept"
    DECLINE = "decline"
    INTRODUCE = "introduce"
    NEGOTIATE = "negotiate"
    AGREE = "agree"
    CLOSE = "close"
    ERASE = "erase"


TOMBSTONE_ACTIONS = frozenset({Action.DELETE, Action.UNDELETE})

# Who may take a step or write a field.
OWNER = "owner"  # the record's origin: the owning centre, or the key holder
HUB = "hub"  # HQ
PARTY = "party"  # the record's handling centre (`Kind.handler_field`); checked in the merge

# Who may own a record (`Kind.owned_by`): a centre, or the holder of a key a
# record of the set's key kind registers (`KindSet.key_kind`, by that kind's name).
CENTRE = "centre"


@dataclass(frozen=True)
class Target:
    """A record that points at another record (`record_field`), naming that record's
    kind (`kind_field`) and the centre handling it (`handler_field`); the target must
    be one of `kinds`, held here (`noun` words them for a message)."""

    record_field: str
    kind_field: str
    handler_field: str
    kinds: tuple[str, ...]
    noun: str


@dataclass(frozen=True)
class Kind:
    name: str
    # Every field with its default (the type of the default is the field's type).
    defaults: Mapping[str, FieldValue]
    rules: Mapping[str, Rule]
    # Written by the record's owner (its origin) only; curation fields by HQ only.
    owner_fields: frozenset[str]
    statuses: tuple[str, ...]  # in rank order: concurrent steps merge to the highest
    initial: frozenset[str]  # statuses a record may be created in
    transitions: Mapping[Action, tuple[frozenset[str], str]]
    rights: Mapping[Action, frozenset[str]]
    # The wire message holding the kind's values (its slot in Change.values is the kind's name).
    values_message: type[Message]
    hub_fields: frozenset[str] = frozenset()
    # Set by the create only, never changed afterwards.
    fixed: frozenset[str] = frozenset()
    # A create must set these, non-empty.
    required: tuple[str, ...] = ()
    # Fields a step sets along with taking it; the first of each tuple is required.
    step_fields: Mapping[Action, tuple[str, ...]] = field(default_factory=dict)
    # Rules across fields of a whole record (checked at creation).
    whole: Callable[[Mapping[str, FieldValue]], list[FieldViolation]] | None = None
    # Rules across the fields a change sets (checked on every change).
    set_rules: SetRule | None = None
    title_field: str = "title"
    # Who may own (be the origin of) a record of this kind: CENTRE and/or the key kind's name.
    owned_by: frozenset[str] = frozenset({CENTRE})
    # The field naming the centre that handles the record (takes its PARTY steps);
    # empty: its origin handles it.
    handler_field: str = ""
    # The field naming the centre a key holder's create comes through (it countersigns as relay).
    relay_field: str = ""
    # Fields naming centres that a create with an audience must include in it.
    centre_fields: tuple[str, ...] = ()
    # A step that needs the owner's consent among its ancestors, and the field carrying it.
    consent_steps: frozenset[Action] = frozenset()
    consent_field: str = ""
    # Steps that count once in a record's history (a second among its ancestors is ignored).
    once_steps: frozenset[Action] = frozenset()
    # Fields whose values are tuples of strings, with the names of their parts on the wire.
    composite_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # A field that, set non-empty, brings another with it unless that one is given:
    # name -> (companion, the companion's value when missing).
    companions: Mapping[str, tuple[str, FieldValue]] = field(default_factory=dict)
    # The field holding when a record lapses (ms): a create that leaves it 0 gets the
    # site's validity period, and a step that sets it must move it later.
    lifetime_field: str = ""
    # The record this kind's records point at, checked where one is created.
    target: Target | None = None

    # Derived once per kind (a kind never changes): read for every version checked.
    @cached_property
    def rank(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.statuses)}

    @cached_property
    def status_actions(self) -> frozenset[Action]:
        return frozenset({Action.CREATE, Action.SETTLE, *self.transitions})

    @cached_property
    def field_order(self) -> dict[str, int]:
        """Each field's place among the kind's fields (the order problems are named in)."""
        return {n: i for i, n in enumerate(self.defaults)}

    @cached_property
    def wire_readers(self) -> dict[str, Callable[[Any], FieldValue]]:
        """For each field, how its value is read off the kind's values message: the
        repeated composite parts as tuples, lists as tuples, scalars by the default's type."""
        readers: dict[str, Callable[[Any], FieldValue]] = {}
        for name, default in self.defaults.items():
            parts = self.composite_fields.get(name)
            if parts is not None:
                readers[name] = _composite_reader(parts)
            elif isinstance(default, tuple):
                readers[name] = tuple
            elif isinstance(default, bool):
                readers[name] = bool
            elif isinstance(default, int):
                readers[name] = int
            else:
                readers[name] = str
        return readers

    @cached_property
    def wire_unset(self) -> dict[str, FieldValue]:
        """Each field's value, as its reader reads it, where a values message leaves it unset."""
        empty = self.values_message()
        return {name: read(getattr(empty, name)) for name, read in self.wire_readers.items()}

    @cached_property
    def _sorted_field_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.defaults))

    def field_names(self) -> tuple[str, ...]:
        return self._sorted_field_names


def _composite_reader(parts: tuple[str, ...]) -> Callable[[Any], FieldValue]:
    def read(raw: Any) -> FieldValue:
        return tuple(tuple(getattr(item, p) for p in parts) for item in raw)

    return read


@dataclass(frozen=True)
class KindSet:
    """The kinds a site handles, by name, and the roles some of them play for the core."""

    kinds: tuple[Kind, ...]
    # The kind whose create registers a key that signs for the record's id (a key
    # holder other than a centre), and the field of the create carrying the key.
    key_kind: str
    key_field: str
    # The kinds whose records the search covers, and what a record is found by.
    searchable: tuple[str, ...]
    search_doc: Callable[[Content], SearchDoc | None]
    _by_name: dict[str, Kind] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update((k.name, k) for k in self.kinds)
        named = {self.key_kind, *self.searchable}
        unknown = sorted(named - set(self._by_name))
        if unknown:
            raise ValueError(f"a kind set names kinds it does not hold: {', '.join(unknown)}")

    def __getitem__(self, name: str) -> Kind:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def get(self, name: str) -> Kind:
        """The kind called `name`, or InvalidInput naming the kinds there are."""
        found = self._by_name.get(name)
        if found is None:
            known = ", ".join(self._by_name)
            raise InvalidInput([FieldViolation("kind", f"unknown record kind {name!r} (kinds: {known})")])
        return found


# ---- values -----------------------------------------------------------------------


@dataclass(frozen=True)
class Content:
    """A record's fields (every field of its kind, sorted by name) and its status;
    `spec` is the kind they are fields of."""

    kind: str
    fields: tuple[tuple[str, FieldValue], ...]
    status: str
    spec: Kind = field(compare=False, repr=False)

    def value(self, name: str) -> FieldValue:
        for n, v in self.fields:
            if n == name:
                return v
        raise KeyError(name)

    def as_dict(self) -> dict[str, FieldValue]:
        return dict(self.fields)

    @property
    def title(self) -> str:
        return str(self.value(self.spec.title_field))

    def __getattr__(self, name: str) -> FieldValue:
        # Read fields as attributes (content.summary); only reached for names
        # that are not attributes of the dataclass itself.
        if name.startswith("_") or name == "spec":
            raise AttributeError(name)
        try:
            return self.value(name)
        except KeyError:
            raise AttributeError(name) from None


def make_content(kind: Kind, values: Mapping[str, FieldValue], status: str) -> Content:
    """The content of `values` (each field of the kind not among them at its default),
    its fields in the order of their names."""
    unknown = values.keys() - kind.defaults.keys()
    if unknown:
        raise InvalidInput([FieldViolation(n, f"not a {kind.name} field") for n in sorted(unknown)])
    merged = {**kind.defaults, **values}
    names = kind.field_names()
    return Content(kind.name, tuple(zip(names, map(merged.__getitem__, names), strict=True)), status, kind)


def with_companions(kind: Kind, fields: Mapping[str, FieldValue]) -> dict[str, FieldValue]:
    """`fields` with each companion filled in (`Kind.companions`) where a field that
    brings one is set non-empty and the companion is not."""
    out = dict(fields)
    for name, (companion, value) in kind.companions.items():
        if out.get(name) and not out.get(companion):
            out[companion] = value
    return out


def _with_companion_names(kind: Kind, names: list[str]) -> list[str]:
    for name, (companion, _) in kind.companions.items():
        if name in names and companion not in names:
            names.append(companion)
    return names


@dataclass(frozen=True)
class Change:
    """What one version does: set some fields, and/or take one lifecycle step."""

    fields: tuple[tuple[str, FieldValue], ...] = ()
    action: Action | None = None
    # The status a CREATE, a status step or a SETTLE leads to.
    status: str | None = None
    # CREATE only: the centres that may receive the record; empty for the whole network.
    audience: tuple[str, ...] = ()
    _index: dict[str, FieldValue] = field(default_factory=dict, compare=False, repr=False)
    _names: tuple[str, ...] = field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update(self.fields)
        object.__setattr__(self, "_names", tuple(n for n, _ in self.fields))

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def get(self, name: str) -> FieldValue | None:
        return self._index.get(name)


def change_of(content: Content, names: Iterable[str]) -> tuple[tuple[str, FieldValue], ...]:
    """The (name, value) pairs of `content` for `names`, in the order of their names; a
    name that is not a field of the content is a KeyError."""
    wanted = set(names)
    pairs = sorted(((n, v) for n, v in content.fields if n in wanted), key=_name_of)
    if len(pairs) != len(wanted):
        raise KeyError(min(wanted - {n for n, _ in pairs}))
    return tuple(pairs)


_name_of = itemgetter(0)


def create_change(content: Content, audience: tuple[str, ...] = ()) -> Change:
    """The change that creates a record: its required and non-default fields (with
    their companions), its first status."""
    kind = content.spec
    names = [n for n, v in content.fields if n in kind.required or v != kind.defaults[n]]
    names = _with_companion_names(kind, names)
    return Change(change_of(content, names), Action.CREATE, content.status, tuple(sorted(set(audience))))


NETWORK = "*"


def audience_key(origin: str, audience: tuple[str, ...]) -> str:
    """How the store keeps an audience for filtering: "*" for the whole network, else
    ",a,b," with the owner included (HQ receives everything anyway)."""
    if not audience:
        return NETWORK
    return "," + ",".join(sorted({origin, *audience})) + ","


def next_status(current: str, action: Action, kind: Kind) -> str:
    """Where a step leads from `current`, or FailedPrecondition if it may not be taken."""
    rule = kind.transitions.get(action)
    if rule is None:
        raise FailedPrecondition(f"{action.value} is not a step a {kind.name} takes")
    sources, target = rule
    if current not in sources:
        allowed = ", ".join(sorted(str(s) for s in sources))
        raise FailedPrecondition(f"cannot {action.value} a {kind.name} that is {current} (only from: {allowed})")
    return target


def pins_of(kind: Kind, change: Change) -> bytes:
    """The 8 bytes a record id's nonce ends with: a digest of the kind and of the fixed
    fields its create sets (sync/ids.py), so no second create can change them."""
    fixed = [[n, _canonical(change.get(n) if n in change.names else kind.defaults[n])] for n in sorted(kind.fixed)]
    # The bytes json.dumps(separators=(",", ":"), ensure_ascii=False) gives, made faster.
    data = orjson.dumps([kind.name, fixed])
    return hashlib.sha256(b"techbridge/v1/pins\x00" + data).digest()[:8]


def _canonical(value: FieldValue | None) -> object:
    if isinstance(value, tuple):
        return [list(v) if isinstance(v, tuple) else v for v in value]
    return value


# ---- validation -------------------------------------------------------------------


def check_values(
    kind: Kind, values: Mapping[str, FieldValue], names: Iterable[str], *, whole: bool = False
) -> list[FieldViolation]:
    """Problems with the fields `names` of `values` (a complete record when `whole`)."""
    order = kind.field_order
    last = len(order)
    names = sorted(set(names), key=lambda n: (order.get(n, last), n))
    problems: list[FieldViolation] = []
    for name in names:
        rule = kind.rules.get(name)
        if rule is None:
            continue
        for p in rule(values[name]):
            if p.startswith("["):
                index, _, rest = p.partition("] ")
                problems.append(FieldViolation(f"{name}{index}]", rest))
            else:
                problems.append(FieldViolation(name, p))
    bad = {p.field.split("[")[0] for p in problems}
    if kind.set_rules is not None:
        problems.extend(kind.set_rules(values, [n for n in names if n not in bad]))
    if whole and kind.whole is not None:
        problems.extend(kind.whole(values))
    return problems


def validate_content(content: Content) -> None:
    """Raise InvalidInput naming every field of a whole record that breaks a rule."""
    kind = content.spec
    values = content.as_dict()
    names = [n for n in values if n in kind.required or values[n] != kind.defaults[n]]
    names = _with_companion_names(kind, names)
    problems = check_values(kind, values, names, whole=True)
    if problems:
        raise InvalidInput(problems)


def validate_change(change: Change, kind: Kind) -> None:
    """The rules for the fields a change sets (a title it sets must not be empty)."""
    unknown = [n for n in change.names if n not in kind.defaults]
    if unknown:
        raise InvalidInput([FieldViolation(n, f"not a {kind.name} field") for n in unknown])
    values = {**kind.defaults, **dict(change.fields)}
    problems = check_values(kind, values, change.names, whole=change.action == Action.CREATE)
    if problems:
        raise InvalidInput(problems)

"""FIX data dictionaries read at run time from QuickFIX-format XML (``FIX42.xml``, ``FIX44.xml``).

A :class:`DataDictionary` knows every field (tag, name, type, allowed values), the header and
trailer fields, and for every message type its allowed fields, required fields and repeating
groups (components are expanded in place). The dictionary folder is chosen explicitly: the
``spec_dir`` argument (``--spec-dir`` on the CLI), else ``$KEEL_FIX_SPEC_DIR``, else the copies
keel ships. No folder is ever searched for implicitly (not the working directory, not its
parents), so what a process reads does not depend on where it was started.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from keel.errors import ConfigError

SPEC_ENV = "KEEL_FIX_SPEC_DIR"
#: QuickFIX's dictionaries shipped with keel (see spec/README.md): the last resort
PACKAGED_SPEC_DIR = Path(__file__).resolve().parent / "spec"

# Types QuickFIX checks the format of; everything else is a free string.
INT_TYPES = frozenset({"INT", "LENGTH", "NUMINGROUP", "SEQNUM", "TAGNUM", "DAYOFMONTH"})
FLOAT_TYPES = frozenset({"FLOAT", "PRICE", "QTY", "AMT", "PRICEOFFSET", "PERCENTAGE"})
MULTI_TYPES = frozenset({"MULTIPLEVALUESTRING", "MULTIPLESTRINGVALUE", "MULTIPLECHARVALUE"})


@dataclass(frozen=True, slots=True)
class FieldDef:
    """One field: ``tag`` number, ``name``, FIX ``type`` and its enumerated ``values`` (or None)."""

    tag: int
    name: str
    type: str
    values: frozenset[str] | None = None


@dataclass(slots=True)
class GroupDef:
    """A repeating group: its NumInGroup ``count_tag``, the ``delim`` tag that opens each entry,
    member ``order`` (definition order), ``required`` members and nested groups."""

    count_tag: int
    delim: int
    order: list[int] = field(default_factory=list)
    required: list[int] = field(default_factory=list)
    groups: dict[int, GroupDef] = field(default_factory=dict)
    members: frozenset[int] = frozenset()


@dataclass(slots=True)
class MessageDef:
    """A message type: allowed top-level ``fields`` (group count tags included), ``required``
    tags (sorted) and its repeating ``groups`` keyed by count tag."""

    msg_type: str
    name: str
    admin: bool
    fields: set[int] = field(default_factory=set)
    required: list[int] = field(default_factory=list)
    groups: dict[int, GroupDef] = field(default_factory=dict)


class DataDictionary:
    """The parsed dictionary of one FIX version (``begin_string`` such as ``FIX.4.2``)."""

    def __init__(self, begin_string: str, fields: dict[int, FieldDef],
                 header: MessageDef, trailer: MessageDef, messages: dict[str, MessageDef],
                 path: str = "") -> None:
        self.begin_string = begin_string
        self.fields = fields
        self.by_name = {f.name: f.tag for f in fields.values()}
        self.header = header
        self.trailer = trailer
        self.messages = messages
        self.path = path
        self.header_tags = frozenset(header.fields | {t for g in header.groups.values()
                                                     for t in g.order})
        self.trailer_tags = frozenset(trailer.fields)
        # memo of the validator (see keel.venues.fix.validate), owned by the dictionary
        self.validation_cache: dict[object, object] = {}
        # DATA fields and the LENGTH field that announces their size.
        self.data_length_tag: dict[int, int] = {}
        for f in fields.values():
            if f.type == "DATA":
                self.data_length_tag[f.tag] = 93 if f.tag == 89 else f.tag - 1

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DataDictionary:
        """Parse a QuickFIX-format XML dictionary; ``ConfigError`` if missing or malformed."""
        return _load_cached(str(Path(path).resolve()))

    def tag(self, name: str) -> int:
        return self.by_name[name]

    def __repr__(self) -> str:
        return f"DataDictionary({self.begin_string}, {len(self.messages)} messages, {self.path})"


@lru_cache(maxsize=16)
def _load_cached(path: str) -> DataDictionary:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"FIX data dictionary not found: {p} (set {SPEC_ENV} or pass the "
                          "spec folder)", field="spec_dir", value=str(p))
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise ConfigError(f"malformed FIX data dictionary: {exc}", field="spec_dir",
                          value=str(p)) from None
    begin = f"{root.get('type', 'FIX')}.{root.get('major')}.{root.get('minor')}"
    fields: dict[int, FieldDef] = {}
    fields_el = root.find("fields")
    for f in fields_el if fields_el is not None else []:
        values = [v.get("enum", "") for v in f.findall("value")]
        tag = int(f.get("number", "0"))
        fields[tag] = FieldDef(tag, f.get("name", ""), f.get("type", "STRING").upper(),
                               frozenset(values) if values else None)
    by_name = {f.name: f.tag for f in fields.values()}
    components = {c.get("name", ""): c for c in root.find("components") or []}

    def fill(target: MessageDef | GroupDef, el: ET.Element, required_ok: bool,
             order: list[int] | None) -> None:
        for child in el:
            name = child.get("name", "")
            req = required_ok and child.get("required", "N") == "Y"
            if child.tag == "field":
                tag = by_name[name]
                _add(target, tag, req, order)
            elif child.tag == "group":
                count = by_name[name]
                g = GroupDef(count_tag=count, delim=0)
                fill(g, child, True, g.order)
                g.delim = g.order[0] if g.order else 0
                g.members = frozenset(g.order)
                _add(target, count, req, order)
                target.groups[count] = g
            elif child.tag == "component":
                comp = components.get(name)
                if comp is None:
                    raise ConfigError(f"unknown component {name} in {p.name}",
                                      field="component", value=name)
                fill(target, comp, req, order)

    def section(tag_name: str, msg_type: str) -> MessageDef:
        md = MessageDef(msg_type, tag_name, True)
        el = root.find(tag_name)
        if el is not None:
            fill(md, el, True, None)
        md.required.sort()
        return md

    header = section("header", "_header_")
    trailer = section("trailer", "_trailer_")
    messages: dict[str, MessageDef] = {}
    for m in root.find("messages") or []:
        md = MessageDef(m.get("msgtype", ""), m.get("name", ""), m.get("msgcat") == "admin")
        fill(md, m, True, None)
        md.required.sort()
        messages[md.msg_type] = md
    return DataDictionary(begin, fields, header, trailer, messages, path=str(p))


def _add(target: MessageDef | GroupDef, tag: int, required: bool, order: list[int] | None) -> None:
    if isinstance(target, MessageDef):
        target.fields.add(tag)
    elif order is not None and tag not in order:
        order.append(tag)
    if required and tag not in target.required:
        target.required.append(tag)


def find_spec_dir(spec_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding ``FIX42.xml`` / ``FIX44.xml``.

    Order: the explicit argument, else ``$KEEL_FIX_SPEC_DIR``, else the copies shipped with
    keel (:data:`PACKAGED_SPEC_DIR`). Nothing is searched for: the working directory and its
    parents are never looked at. An explicit folder or variable that holds no dictionary raises
    ``ConfigError`` saying how to configure it (never a silent fall back to the packaged copy).
    """
    if spec_dir is not None:
        folder, source = Path(spec_dir), "spec_dir"
    elif os.environ.get(SPEC_ENV):
        folder, source = Path(os.environ[SPEC_ENV]), SPEC_ENV
    else:
        return PACKAGED_SPEC_DIR
    if (folder / "FIX42.xml").is_file() or (folder / "FIX44.xml").is_file():
        return folder
    raise ConfigError(
        f"FIX data dictionaries (FIX42.xml, FIX44.xml) not found in {folder} (from {source}); "
        f"pass --spec-dir or set {SPEC_ENV} to the folder holding them (QuickFIX's spec/ "
        "folder works), or unset both to use the copies keel ships",
        field="spec_dir", value=str(folder))


def load_dictionary(begin_string: str, spec_dir: str | os.PathLike[str] | None = None
                    ) -> DataDictionary:
    """The dictionary for ``begin_string`` (``FIX.4.2`` -> ``FIX42.xml``) from the spec folder."""
    name = begin_string.replace(".", "").replace("FIXT", "FIXT") + ".xml"
    return DataDictionary.load(find_spec_dir(spec_dir) / name)

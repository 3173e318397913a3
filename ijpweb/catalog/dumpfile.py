"""Reading ICAT dump files as python-icat's icatdump writes them (ICAT 4.4 to 6.2).

Two formats carry the same content:

* YAML: ``---`` chunks, each a mapping from a lower-case entity name (``dataset``) to
  objects by key; an object's fields are attributes, references (a key) and nested
  collections (lists of child objects).
* XML: ``<icatdata><head/><data>`` with one element per object (``<dataset id="key">``),
  fields as child elements, references as ``<field ref="key"/>``, nested collections as
  child elements with content.

Both are read into :class:`DumpObject` trees, checked against the ICAT schema
(:mod:`ijpweb.catalog.icatschema`). Anything unexpected raises :class:`DumpError` with
the file, the position (a line, or the object's key) and the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..xmlfiles import XMLFileError, local, parse_bytes
from .icatschema import Entity, by_lower_name, entities

# The order icatdump writes entity types in: referenced objects come first.
ORDER = [
    "user", "grouping", "userGroup", "rule", "publicStep", "facility", "instrument",
    "instrumentScientist", "parameterType", "permissibleStringValue", "dataPublicationType",
    "investigationType", "sampleType", "datasetType", "datafileFormat", "technique",
    "facilityCycle", "application", "fundingReference", "investigation",
    "investigationParameter", "keyword", "publication", "shift", "investigationFunding",
    "investigationGroup", "investigationInstrument", "investigationUser", "sample",
    "sampleParameter", "dataset", "datasetParameter", "datasetInstrument", "datasetTechnique",
    "datafile", "datafileParameter", "dataCollection", "dataCollectionParameter",
    "dataCollectionDataset", "dataCollectionDatafile", "dataPublication", "dataPublicationDate",
    "dataPublicationFunding", "dataPublicationUser", "affiliation", "relatedItem", "study",
    "studyInvestigation", "relatedDatafile", "job", "subject",
]  # fmt: skip
MAX_BYTES = 200_000_000


class DumpError(ValueError):
    def __init__(self, file: str, position: str, reason: str):
        super().__init__(f"{file}: {position}: {reason}")
        self.file, self.position, self.reason = file, position, reason


@dataclass
class DumpObject:
    entity: str  # Dataset
    key: str | None  # the reference key, for top-level objects
    position: str
    attrs: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # many-to-one field -> key
    children: list[tuple[str, DumpObject]] = field(default_factory=list)

    def walk(self) -> Iterator[DumpObject]:
        yield self
        for _, child in self.children:
            yield from child.walk()


def _convert(file: str, position: str, entity: Entity, name: str, value: Any) -> Any:
    attr = entity.attributes[name]
    if value is None:
        return None
    try:
        if attr.type == "boolean":
            if isinstance(value, bool):
                return value
            if str(value).strip() in ("true", "1"):
                return True
            if str(value).strip() in ("false", "0"):
                return False
            raise ValueError(f"{value!r} is not a boolean")
        if attr.type == "integer":
            if isinstance(value, bool):
                raise ValueError(f"{value!r} is not an integer")
            return int(value)
        if attr.type == "double":
            return float(value)
        if attr.type == "datetime":
            if isinstance(value, datetime):
                dt = value
            else:
                dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        if attr.type == "enum":
            text = str(value).strip()
            if text not in attr.values:
                raise ValueError(f"{text!r} is not one of {', '.join(attr.values)}")
            return text
        return value if isinstance(value, str) else str(value)
    except (TypeError, ValueError) as e:
        raise DumpError(file, position, f"{entity.name}.{name}: {e}") from None


# --- YAML ------------------------------------------------------------------------------


def _yaml_object(file: str, position: str, entity: Entity, data: Any, key: str | None) -> DumpObject:
    if not isinstance(data, dict):
        raise DumpError(file, position, f"a {entity.name} must be a mapping")
    obj = DumpObject(entity.name, key, position)
    for name, value in data.items():
        if name in entity.attributes:
            obj.attrs[name] = _convert(file, position, entity, name, value)
        elif name in entity.relations:
            rel = entity.relations[name]
            if rel.many:
                if not isinstance(value, list):
                    raise DumpError(file, position, f"{entity.name}.{name} must be a list")
                target = entities()[rel.target]
                for i, child in enumerate(value):
                    obj.children.append(
                        (name, _yaml_object(file, f"{position}.{name}[{i}]", target, child, None))
                    )
            else:
                if not isinstance(value, str):
                    raise DumpError(file, position, f"{entity.name}.{name} must be a reference key")
                obj.refs[name] = value
        else:
            raise DumpError(file, position, f"{entity.name} has no field {name!r}")
    return obj


def read_yaml(text: str, file: str) -> list[DumpObject]:
    import yaml

    types = by_lower_name()
    out: list[DumpObject] = []
    try:
        chunks = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "start"
        raise DumpError(file, where, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    for n, chunk in enumerate(chunks, 1):
        if chunk is None:
            continue
        if not isinstance(chunk, dict):
            raise DumpError(file, f"chunk {n}", "a chunk must map entity names to objects")
        unknown = [k for k in chunk if k not in types]
        if unknown:
            raise DumpError(file, f"chunk {n}", f"unknown entity type {unknown[0]!r}")
        for lower in sorted(chunk, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER)):
            objects = chunk[lower] or {}
            if not isinstance(objects, dict):
                raise DumpError(file, f"chunk {n}, {lower}", "objects must be a mapping by key")
            for key in sorted(objects):
                out.append(_yaml_object(file, f"{lower} {key}", types[lower], objects[key], key))
    return out


# --- XML -------------------------------------------------------------------------------


def _xml_object(file: str, el, entity: Entity, key: str | None) -> DumpObject:
    position = f"line {el.sourceline}"
    obj = DumpObject(entity.name, key, position)
    for child in el:
        name = local(child)
        if not name:
            continue
        if name in entity.attributes:
            obj.attrs[name] = _convert(
                file, f"line {child.sourceline}", entity, name, child.text if child.text is not None else ""
            )
        elif name in entity.relations:
            rel = entity.relations[name]
            if rel.many:
                obj.children.append((name, _xml_object(file, child, entities()[rel.target], None)))
            elif child.get("ref"):
                obj.refs[name] = child.get("ref")
            else:
                raise DumpError(
                    file,
                    f"line {child.sourceline}",
                    f'{entity.name}.{name}: only ref="key" references are supported',
                )
        else:
            raise DumpError(file, f"line {child.sourceline}", f"{entity.name} has no field {name!r}")
    return obj


def read_xml(data: bytes, file: str) -> list[DumpObject]:
    try:
        root = parse_bytes(data, file)
    except XMLFileError as e:
        raise DumpError(file, f"line {e.problem.line or 1}", e.problem.reason) from None
    if local(root) != "icatdata":
        raise DumpError(file, f"line {root.sourceline}", f"expected <icatdata>, found <{local(root)}>")
    types = by_lower_name()
    out: list[DumpObject] = []
    for section in root:
        if local(section) != "data":
            continue
        for el in section:
            name = local(el)
            if not name:
                continue
            if name not in types:
                raise DumpError(file, f"line {el.sourceline}", f"unknown entity type <{name}>")
            out.append(_xml_object(file, el, types[name], el.get("id")))
    return out


def read(path: str | Path) -> list[DumpObject]:
    """Read a dump file, YAML or XML, as its content says."""
    p = Path(path)
    data = p.read_bytes()
    if len(data) > MAX_BYTES:
        raise DumpError(p.name, "start", f"larger than {MAX_BYTES} bytes")
    head = data.lstrip()[:100]
    if head.startswith(b"<"):
        return read_xml(data, p.name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DumpError(p.name, f"byte {e.start}", "not UTF-8") from None
    return read_yaml(text, p.name)

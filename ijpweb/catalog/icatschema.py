"""ICAT's entity model, read from the icatdata XSD that python-icat publishes
(``ijpweb/schemas/icatdata-6.2.xsd``, valid for ICAT 6.2 and a superset of 4.4–5.0).

For each entity: its attributes and their types, its many-to-one relations (the ``*Ref``
elements) and its one-to-many collections with the field on the other side. The
embedded catalog, the dump importer and the query engine all take their knowledge of
ICAT from here, so there is one description of the schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from lxml import etree

XSD = Path(__file__).resolve().parents[1] / "schemas" / "icatdata-6.2.xsd"
_NS = {"xsd": "http://www.w3.org/2001/XMLSchema"}

# Where a collection's inverse is not the only many-to-one back to the parent.
_INVERSE = {
    ("Datafile", "sourceDatafiles"): "destDatafile",
    ("Datafile", "destDatafiles"): "sourceDatafile",
    ("DataCollection", "jobsAsInput"): "inputDataCollection",
    ("DataCollection", "jobsAsOutput"): "outputDataCollection",
}

# ICAT's unique keys (icat.server's @UniqueConstraint), by field: relations stand for
# their foreign keys. Entities not listed have none.
UNIQUE: dict[str, tuple[str, ...]] = {
    "Application": ("facility", "name", "version"),
    "DataCollectionDatafile": ("dataCollection", "datafile"),
    "DataCollectionDataset": ("dataCollection", "dataset"),
    "DataCollectionInvestigation": ("dataCollection", "investigation"),
    "DataCollectionParameter": ("dataCollection", "type"),
    "DataPublication": ("facility", "pid"),
    "DataPublicationDate": ("publication", "dateType"),
    "DataPublicationFunding": ("publication", "funding"),
    "DataPublicationType": ("facility", "name"),
    "DataPublicationUser": ("publication", "user", "contributorType"),
    "Datafile": ("dataset", "name"),
    "DatafileFormat": ("facility", "name", "version"),
    "DatafileParameter": ("datafile", "type"),
    "Dataset": ("investigation", "name"),
    "DatasetInstrument": ("dataset", "instrument"),
    "DatasetParameter": ("dataset", "type"),
    "DatasetTechnique": ("dataset", "technique"),
    "DatasetType": ("facility", "name"),
    "Facility": ("name",),
    "FacilityCycle": ("facility", "name"),
    "FundingReference": ("funderName", "awardNumber"),
    "Grouping": ("name",),
    "Instrument": ("facility", "name"),
    "InstrumentScientist": ("user", "instrument"),
    "Investigation": ("facility", "name", "visitId"),
    "InvestigationFacilityCycle": ("facilityCycle", "investigation"),
    "InvestigationFunding": ("investigation", "funding"),
    "InvestigationGroup": ("grouping", "investigation", "role"),
    "InvestigationInstrument": ("investigation", "instrument"),
    "InvestigationParameter": ("investigation", "type"),
    "InvestigationType": ("name", "facility"),
    "InvestigationUser": ("user", "investigation", "role"),
    "Keyword": ("name", "investigation"),
    "ParameterType": ("facility", "name", "units"),
    "PermissibleStringValue": ("value", "type"),
    "PublicStep": ("origin", "field"),
    "RelatedDatafile": ("sourceDatafile", "destDatafile"),
    "Sample": ("investigation", "name"),
    "SampleParameter": ("sample", "type"),
    "SampleType": ("facility", "name", "molecularFormula"),
    "Shift": ("investigation", "startDate", "endDate"),
    "StudyInvestigation": ("study", "investigation"),
    "User": ("name",),
    "UserGroup": ("user", "grouping"),
}

SIMPLE_TYPES = {
    "xsd:string": "string",
    "xsd:boolean": "boolean",
    "xsd:integer": "integer",
    "xsd:long": "integer",
    "xsd:int": "integer",
    "xsd:double": "double",
    "xsd:float": "double",
    "xsd:dateTime": "datetime",
}


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str  # string | boolean | integer | double | datetime | enum
    required: bool
    values: tuple[str, ...] = ()  # for enums


# Every ICAT entity has these, though dump files do not carry them.
BASE_ATTRIBUTES = {
    "id": Attribute("id", "integer", False),
    "createId": Attribute("createId", "string", False),
    "createTime": Attribute("createTime", "datetime", False),
    "modId": Attribute("modId", "string", False),
    "modTime": Attribute("modTime", "datetime", False),
}


@dataclass(frozen=True)
class Relation:
    name: str
    target: str  # entity name
    many: bool  # one-to-many (a collection) or many-to-one
    inverse: str | None = None  # for a collection: the many-to-one field of the target


@dataclass
class Entity:
    name: str  # Dataset
    attributes: dict[str, Attribute] = field(default_factory=dict)
    relations: dict[str, Relation] = field(default_factory=dict)

    @property
    def lower(self) -> str:
        """The name dump files use: dataset, dataCollectionDatafile."""
        return self.name[0].lower() + self.name[1:]

    def one(self) -> dict[str, Relation]:
        return {k: r for k, r in self.relations.items() if not r.many}

    def many(self) -> dict[str, Relation]:
        return {k: r for k, r in self.relations.items() if r.many}


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


@cache
def entities() -> dict[str, Entity]:
    """Every ICAT entity by name (``Dataset``)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(XSD), parser).getroot()
    enums = {
        st.get("name"): tuple(e.get("value") for e in st.iterfind(".//xsd:enumeration", _NS))
        for st in root.iterfind("xsd:simpleType", _NS)
    }
    types = {ct.get("name"): ct for ct in root.iterfind("xsd:complexType", _NS)}
    out: dict[str, Entity] = {}
    for name, ct in types.items():
        ext = ct.find("xsd:complexContent/xsd:extension", _NS)
        if ext is None or ext.get("base") != "entityBase" or name == "entityReference":
            continue
        entity = Entity(_cap(name), dict(BASE_ATTRIBUTES))
        for el in ext.iterfind("xsd:sequence/xsd:element", _NS):
            fname, ftype = el.get("name"), el.get("type")
            many = el.get("maxOccurs") == "unbounded"
            if ftype in SIMPLE_TYPES:
                entity.attributes[fname] = Attribute(fname, SIMPLE_TYPES[ftype], el.get("minOccurs") != "0")
            elif ftype in enums:
                entity.attributes[fname] = Attribute(fname, "enum", el.get("minOccurs") != "0", enums[ftype])
            elif ftype.endswith("Ref") and not many:
                entity.relations[fname] = Relation(fname, _cap(ftype[:-3]), False)
            elif ftype in types and not many:  # a few many-to-one fields name the type itself
                entity.relations[fname] = Relation(fname, _cap(ftype), False)
            elif ftype in types and many:
                entity.relations[fname] = Relation(fname, _cap(ftype), True)
            else:
                raise ValueError(f"{XSD.name}: {name}.{fname}: unexpected type {ftype}")
        out[entity.name] = entity
    for entity in out.values():
        for fname, rel in list(entity.relations.items()):
            if not rel.many:
                continue
            target = out[rel.target]
            back = [k for k, r in target.one().items() if r.target == entity.name]
            inverse = _INVERSE.get((entity.name, fname)) or (back[0] if len(back) == 1 else None)
            if inverse is None:
                raise ValueError(f"cannot tell the inverse of {entity.name}.{fname}: {back}")
            entity.relations[fname] = Relation(fname, rel.target, True, inverse)
    return out


def by_lower_name() -> dict[str, Entity]:
    return {e.lower: e for e in entities().values()}

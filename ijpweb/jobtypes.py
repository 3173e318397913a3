"""Job types: the IJP ``<jobType>`` XML (ijp-formats.md §1) as immutable objects.

Compatible with the original: the root element name is not checked, unknown elements and
attributes are ignored, booleans are ``xs:boolean`` and default to false, options keep
document order and empty strings. Stricter where the original failed late: a bad
``type``, a number that does not parse or a condition that does not parse is reported
when the file loads, with the file name and line, instead of at submit time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from . import conditions
from .xmlfiles import (
    FileProblem,
    Snapshot,
    XMLDirectory,
    XMLFileError,
    local,
    parse_bytes,
    text_of,
)

OPTION_TYPES = ("boolean", "enumeration", "string", "integer", "float")
JOB_KINDS = ("batch", "interactive")
BOOL_ATTRS = (
    "sessionId",
    "icatUrlRequired",
    "idsUrlRequired",
    "acceptsDatasets",
    "acceptsDatafiles",
    "createsProvenance",
    "generatesProvenance",
)
JOB_ONLY_DATASET_TYPE = "none (job only)"
SCHEMA = Path(__file__).parent / "schemas" / "jobtype.xsd"


@dataclass(frozen=True)
class JobOption:
    name: str
    type: str
    program_parameter: str = ""
    group_name: str = ""
    values: tuple[str, ...] = ()
    default_value: str | None = None
    min_value: str | None = None
    max_value: str | None = None
    condition: str = ""
    tip: str = ""
    parsed_condition: conditions.Expression | None = field(default=None, compare=False)

    @property
    def is_radio(self) -> bool:
        return self.type == "boolean" and bool(self.group_name)

    @property
    def is_checkbox(self) -> bool:
        return self.type == "boolean" and not self.group_name

    @property
    def key(self) -> str:
        """The name a value is given under: the group for radio options."""
        return self.group_name if self.is_radio else self.name

    def bound(self, which: str) -> int | float | None:
        raw = self.min_value if which == "min" else self.max_value
        return None if raw is None or raw == "" else parse_number(self.type, raw)

    def to_ijp_json(self) -> dict:
        """One entry of the original's ``jobOptions``, key order kept."""
        jo: dict = {"name": self.name}
        if self.group_name:
            jo["groupName"] = self.group_name
        jo |= {"type": self.type, "programParameter": self.program_parameter, "values": list(self.values)}
        for key, v in (
            ("defaultValue", self.default_value),
            ("minValue", self.min_value),
            ("maxValue", self.max_value),
            ("condition", self.condition or None),
            ("tip", self.tip or None),
        ):
            if v is not None:
                jo[key] = v
        return jo


# <inputs> attributes: how many datasets and datafiles one job of the type takes
INPUT_BOUNDS = ("minDatasets", "maxDatasets", "minDatafiles", "maxDatafiles")
MAX_INPUT_BOUND = 1_000_000


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True)
class InputsRule:
    """How many datasets and datafiles one job takes (``<inputs>``); None: no bound.

    The rule is per job: with one job per input (multiple="false", or the user's choice
    of one job per input) each job has one dataset or one datafile and that is what is
    checked; with one job for all inputs, the whole selection is."""

    min_datasets: int | None = None
    max_datasets: int | None = None
    min_datafiles: int | None = None
    max_datafiles: int | None = None

    def _need(self, low: int | None, high: int | None, noun: str) -> str | None:
        if not low and high is None:
            return None
        if high == 0:
            return f"no {noun}s"
        if low == high:
            return f"exactly {_count(low, noun)}"
        if high is None:
            return f"at least {_count(low, noun)}"
        if not low:
            return f"at most {_count(high, noun)}"
        return f"{low} to {high} {noun}s"

    def needs(self) -> str:
        """What it needs in words: "exactly 1 dataset and 1 datafile"."""
        parts = [
            self._need(self.min_datasets, self.max_datasets, "dataset"),
            self._need(self.min_datafiles, self.max_datafiles, "datafile"),
        ]
        parts = [p for p in parts if p]
        if len(parts) == 2 and parts[0].startswith("exactly ") and parts[1].startswith("exactly "):
            parts[1] = parts[1].removeprefix("exactly ")
        return " and ".join(parts)

    def allows(self, datasets: int, datafiles: int) -> bool:
        def within(n: int, low: int | None, high: int | None) -> bool:
            return (low is None or n >= low) and (high is None or n <= high)

        return within(datasets, self.min_datasets, self.max_datasets) and within(
            datafiles, self.min_datafiles, self.max_datafiles
        )

    def to_json(self) -> dict:
        return {
            "minDatasets": self.min_datasets,
            "maxDatasets": self.max_datasets,
            "minDatafiles": self.min_datafiles,
            "maxDatafiles": self.max_datafiles,
        }


@dataclass(frozen=True)
class JobType:
    name: str
    executable: str
    type: str = "batch"
    multiple: bool = False
    force_single_job: bool = False
    family: str | None = None
    session_id: bool = False
    icat_url_required: bool = False
    ids_url_required: bool = False
    accepts_datasets: bool = False
    accepts_datafiles: bool = False
    creates_provenance: bool = False
    dataset_types: tuple[str, ...] = ()
    options: tuple[JobOption, ...] = ()
    source: str = ""
    # what a cluster should allocate (<resources>), as (name, value) pairs
    resources: tuple[tuple[str, str], ...] = ()
    # ijpweb: what the job type does, in plain text (<description>; "" when absent)
    description: str = ""
    # ijpweb: how many datasets and datafiles one job takes (<inputs>); None: any
    inputs: InputsRule | None = None

    @property
    def interactive(self) -> bool:
        return self.type == "interactive"

    @property
    def job_only(self) -> bool:
        return not (self.accepts_datasets or self.accepts_datafiles)

    def accepts_dataset_type(self, type_name: str) -> bool:
        """An empty list (or only ``none (job only)``) places no restriction on types."""
        listed = [t for t in self.dataset_types if t != JOB_ONLY_DATASET_TYPE]
        return not listed or type_name in listed

    def to_ijp_json(self) -> dict:
        """The JSON form of the original REST ``GET jobtype/{name}`` (§1.6), key order kept."""
        d: dict = {
            "name": self.name,
            "executable": self.executable,
            "multiple": self.multiple,
            "forceSingleJob": self.force_single_job,
            "type": self.type,
        }
        if self.family is not None:
            d["family"] = self.family
        d |= {
            "acceptsDatasets": self.accepts_datasets,
            "acceptsDatafiles": self.accepts_datafiles,
            "sessionIdRequired": self.session_id,
            "icatUrlRequired": self.icat_url_required,
            "idsUrlRequired": self.ids_url_required,
            "datasetTypes": list(self.dataset_types),
            "jobOptions": [o.to_ijp_json() for o in self.options],
        }
        return d

    def to_api_json(self) -> dict:
        """/api/v1's form: the original's JSON with ijpweb's description and inputs rule
        (null when the file has none)."""
        return self.to_ijp_json() | {
            "description": self.description,
            "inputs": self.inputs.to_json() if self.inputs else None,
        }


def parse_bool(text: str) -> bool | None:
    return {"true": True, "1": True, "false": False, "0": False}.get(text.strip())


# The one grammar of option values (and of minValue, maxValue and defaultValue) that are
# numbers, with ASCII blanks around them: a whole number with an optional sign; a decimal
# number, with an optional sign, fraction and exponent. Not what int() and float() also
# take (1_0, inf, nan, other scripts' digits), which a program parsing its argv may not.
INTEGER = re.compile(r"[+-]?[0-9]+")
FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
BLANKS = " \t\r\n"


def parse_number(kind: str, text: str) -> int | float:
    """Parse an integer (Java long) or a finite float by :data:`INTEGER` or
    :data:`FLOAT`; raise ValueError."""
    t = text.strip(BLANKS)
    if kind == "integer":
        if not INTEGER.fullmatch(t):
            raise ValueError(f"{text!r} is not a whole number")
        n = int(t)
        if not -(2**63) <= n < 2**63:
            raise ValueError(f"{text!r} is out of range")
        return n
    if not FLOAT.fullmatch(t):
        raise ValueError(f"{text!r} is not a number")
    f = float(t)
    if not math.isfinite(f):
        raise ValueError(f"{text!r} is not a finite number")
    return f


def number_text(n: int | float) -> str:
    """A number as a program receives it: the integer's digits (no +, no leading zeros,
    0 for -0), the float's shortest text that reads back as the same double (so the
    program gets exactly the value the bounds were checked against)."""
    return str(n) if isinstance(n, int) else repr(n)


def _problem(file: str, el: etree._Element, reason: str) -> XMLFileError:
    return XMLFileError(file, el.sourceline, reason)


def _parse_option(el: etree._Element, file: str) -> JobOption:
    fields: dict[str, str] = {}
    values: list[str] = []
    for child in el:
        name = local(child)
        if name == "values":
            values.append(child.text or "")
        elif name in (
            "name",
            "groupName",
            "type",
            "programParameter",
            "defaultValue",
            "minValue",
            "maxValue",
            "condition",
            "tip",
        ):
            fields[name] = text_of(child) if name != "programParameter" else (child.text or "")
    name = fields.get("name", "")
    if not name:
        raise _problem(file, el, "a <jobOptions> has no <name>")
    kind = fields.get("type", "")
    if kind not in OPTION_TYPES:
        raise _problem(
            file,
            el,
            f"option {name!r}: type must be one of {', '.join(OPTION_TYPES)}, not {kind!r}",
        )
    pp = fields.get("programParameter", "").strip()
    for key in ("minValue", "maxValue", "defaultValue"):
        raw = fields.get(key)
        if raw is None or raw == "" or kind not in ("integer", "float"):
            continue
        try:
            parse_number(kind, raw)
        except ValueError as e:
            raise _problem(file, el, f"option {name!r}: {key} {e}") from None
    if kind == "enumeration" and not values:
        raise _problem(file, el, f"option {name!r}: an enumeration needs <values>")
    cond_text = fields.get("condition", "")
    parsed = None
    if cond_text:
        try:
            parsed = conditions.parse(cond_text)
        except conditions.ConditionError as e:
            raise _problem(file, el, f"option {name!r}: bad condition: {e}") from None
    return JobOption(
        name=name,
        type=kind,
        program_parameter=pp,
        group_name=fields.get("groupName", ""),
        values=tuple(values),
        default_value=fields.get("defaultValue"),
        min_value=fields.get("minValue"),
        max_value=fields.get("maxValue"),
        condition=cond_text,
        tip=fields.get("tip", ""),
        parsed_condition=parsed,
    )


# <resources> attributes and what their values look like (sbatch's formats)
RESOURCES = {
    "partition": (r"[A-Za-z0-9_.-]{1,64}", "a partition name"),
    "account": (r"[A-Za-z0-9_.-]{1,64}", "an account name"),
    "time": (r"(\d+-)?\d+(:\d{2}){0,2}", "minutes, or [days-]hours:minutes:seconds"),
    "cpus": (r"[1-9]\d{0,4}", "a whole number of CPUs"),
    "memory": (r"[1-9]\d{0,9}[KMGT]?", "a size such as 4000M or 8G"),
    "gpus": (r"([A-Za-z0-9_]+:)?[1-9]\d{0,2}", "a number of GPUs, optionally type:number"),
}


def _parse_resources(el: etree._Element, file: str) -> tuple[tuple[str, str], ...]:
    out = []
    for key, value in el.attrib.items():
        if key not in RESOURCES:
            raise _problem(file, el, f"<resources> has no attribute {key!r} (it has {', '.join(RESOURCES)})")
        pattern, what = RESOURCES[key]
        if not re.fullmatch(pattern, value.strip()):
            raise _problem(file, el, f"<resources> {key} must be {what}, not {value!r}")
        out.append((key, value.strip()))
    return tuple(sorted(out))


def _parse_inputs(el: etree._Element, file: str, flags: dict[str, bool]) -> InputsRule:
    """``<inputs minDatasets=".." maxDatasets=".." minDatafiles=".." maxDatafiles=".."/>``:
    whole numbers from 0 to :data:`MAX_INPUT_BOUND`, each min at most its max, and no
    datasets (datafiles) required of a type that does not accept them."""
    got: dict[str, int] = {}
    for key, value in el.attrib.items():
        if key not in INPUT_BOUNDS:
            raise _problem(file, el, f"<inputs> has no attribute {key!r} (it has {', '.join(INPUT_BOUNDS)})")
        text = value.strip(BLANKS)
        if not re.fullmatch(r"[0-9]{1,7}", text) or int(text) > MAX_INPUT_BOUND:
            raise _problem(
                file, el, f"<inputs> {key} must be a whole number from 0 to {MAX_INPUT_BOUND}, not {value!r}"
            )
        got[key] = int(text)
    for kind, accepts in (("Datasets", "acceptsDatasets"), ("Datafiles", "acceptsDatafiles")):
        low, high = got.get("min" + kind), got.get("max" + kind)
        if low is not None and high is not None and low > high:
            raise _problem(file, el, f"<inputs> min{kind} ({low}) is more than max{kind} ({high})")
        if low and not flags.get(accepts, False):
            raise _problem(
                file, el, f"<inputs> min{kind} is {low} but the job type does not set {accepts}='true'"
            )
    return InputsRule(
        got.get("minDatasets"), got.get("maxDatasets"), got.get("minDatafiles"), got.get("maxDatafiles")
    )


def parse_jobtype(data: bytes, file: str) -> JobType:
    """Parse one job type file; raise :class:`XMLFileError` naming file, line and reason."""
    root = parse_bytes(data, file)
    flags: dict[str, bool] = {}
    for attr in BOOL_ATTRS:
        raw = root.get(attr)
        if raw is None:
            continue
        value = parse_bool(raw)
        if value is None:
            raise _problem(file, root, f"attribute {attr} must be true or false, not {raw!r}")
        flags[attr] = value
    simple: dict[str, etree._Element] = {}
    dataset_types: list[str] = []
    options: list[JobOption] = []
    resources: tuple[tuple[str, str], ...] = ()
    description: etree._Element | None = None
    rule: InputsRule | None = None
    inputs_el: etree._Element | None = None
    for child in root:
        name = local(child)
        if name == "resources":
            resources = _parse_resources(child, file)
        elif name == "description":
            if description is not None:
                raise _problem(file, child, "<description> is given twice")
            description = child
        elif name == "inputs":
            if inputs_el is not None:
                raise _problem(file, child, "<inputs> is given twice")
            inputs_el = child
        elif name == "jobOptions":
            options.append(_parse_option(child, file))
        elif name == "datasetTypes":
            if text_of(child):
                dataset_types.append(text_of(child))
        elif name in ("name", "executable", "type", "multiple"):
            simple[name] = child
    for required in ("name", "executable", "type"):
        if required not in simple or not text_of(simple[required]):
            raise _problem(file, root, f"<{required}> is missing or empty")
    name = text_of(simple["name"])
    kind = text_of(simple["type"])
    if kind not in JOB_KINDS:
        raise _problem(file, simple["type"], f"<type> must be batch or interactive, not {kind!r}")
    multiple = force_single = False
    if "multiple" in simple:
        m = simple["multiple"]
        multiple_value = parse_bool(text_of(m) or "false")
        if multiple_value is None:
            raise _problem(file, m, f"<multiple> must be true or false, not {text_of(m)!r}")
        multiple = multiple_value
        fs = m.get("forceSingleJob")
        if fs is not None:
            fs_value = parse_bool(fs)
            if fs_value is None:
                raise _problem(file, m, f"forceSingleJob must be true or false, not {fs!r}")
            force_single = fs_value
    if inputs_el is not None:
        rule = _parse_inputs(inputs_el, file, flags)
    seen: set[str] = set()
    for o in options:
        if o.is_radio:
            continue
        if o.name in seen:
            raise XMLFileError(file, None, f"option name {o.name!r} is used twice")
        seen.add(o.name)
    return JobType(
        name=name,
        executable=text_of(simple["executable"]),
        type=kind,
        multiple=multiple,
        force_single_job=force_single,
        family=root.get("family"),
        session_id=flags.get("sessionId", False),
        icat_url_required=flags.get("icatUrlRequired", False),
        ids_url_required=flags.get("idsUrlRequired", False),
        accepts_datasets=flags.get("acceptsDatasets", False),
        accepts_datafiles=flags.get("acceptsDatafiles", False),
        creates_provenance=flags.get("createsProvenance", False) or flags.get("generatesProvenance", False),
        dataset_types=tuple(dataset_types),
        options=tuple(options),
        source=file,
        resources=resources,
        description=_description(description),
        inputs=rule,
    )


def _description(el: etree._Element | None) -> str:
    """The text of ``<description>`` (its elements' text too, never markup), with each
    paragraph's lines joined: paragraphs are separated by a blank line."""
    if el is None:
        return ""
    text = "".join(el.itertext())
    paragraphs = re.split(r"\n[ \t\r]*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


@dataclass(frozen=True)
class Catalogue:
    """The job types loaded now, by name, and the problems found while loading."""

    by_name: dict[str, JobType]
    problems: tuple[FileProblem, ...]

    def get(self, name: str) -> JobType | None:
        return self.by_name.get(name)

    def all(self) -> list[JobType]:
        return sorted(self.by_name.values(), key=lambda j: j.name.lower())


class JobTypes:
    """The job types of a directory, reloaded when its files change."""

    def __init__(self, directory: str | Path, interval: float = 2.0):
        self._dir = XMLDirectory(directory, lambda data, f: [parse_jobtype(data, f)], interval)
        self._cached: tuple[Snapshot[JobType], Catalogue] | None = None

    @property
    def directory(self) -> Path:
        return self._dir.directory

    def current(self) -> Catalogue:
        snap: Snapshot[JobType] = self._dir.snapshot()
        if self._cached is not None and self._cached[0] is snap:
            return self._cached[1]
        by_name: dict[str, JobType] = {}
        problems = list(snap.problems)
        for jt in snap.items:
            if jt.name in by_name:
                problems.append(
                    FileProblem(
                        jt.source,
                        None,
                        f"job type name {jt.name!r} is already defined in "
                        f"{by_name[jt.name].source}; this file is ignored",
                    )
                )
                continue
            by_name[jt.name] = jt
        cat = Catalogue(by_name, tuple(problems))
        self._cached = (snap, cat)
        return cat

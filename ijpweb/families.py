"""Account families (the original IJP's ``families.xml``): which users may run the job
types of a family. A family with no ``<allowed>`` is open to all; patterns must match
the whole user name; a job type without a family uses the default one.

    <families default="batch">
        <family name="ingest"><allowed pattern="db/ingester"/></family>
        <family name="batch"/>
    </families>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .xmlfiles import XMLFileError, local, parse_bytes


class FamilyError(PermissionError):
    pass


@dataclass(frozen=True)
class Families:
    default: str | None
    patterns: dict[str, re.Pattern | None]  # None: open to all
    configured: bool = True  # without a families.xml every family is open

    def check(self, family: str | None, user: str) -> None:
        """Raise FamilyError unless ``user`` may use ``family``."""
        name = family or self.default
        if name is None or not self.configured:
            return
        if name not in self.patterns:
            raise FamilyError(f"family {name!r} is not known")
        pattern = self.patterns[name]
        if pattern is not None and not pattern.fullmatch(user):
            raise FamilyError(f"{user} is not allowed to use family {name!r}")

    def allows(self, family: str | None, user: str) -> bool:
        try:
            self.check(family, user)
        except FamilyError:
            return False
        return True


OPEN = Families(None, {}, configured=False)


def parse(data: bytes, file: str) -> Families:
    root = parse_bytes(data, file)
    patterns: dict[str, re.Pattern | None] = {}
    for fam in root:
        if local(fam) != "family":
            continue
        name = fam.get("name")
        if not name:
            raise XMLFileError(file, fam.sourceline, "a <family> needs a name")
        allowed = [a.get("pattern") for a in fam if local(a) == "allowed" and a.get("pattern")]
        try:
            patterns[name] = re.compile("|".join(f"(?:{p})" for p in allowed)) if allowed else None
        except re.error as e:
            raise XMLFileError(file, fam.sourceline, f"family {name!r}: bad pattern: {e}") from None
    default = root.get("default")
    if default is not None and default not in patterns:
        raise XMLFileError(file, root.sourceline, f"the default family {default!r} is not defined")
    return Families(default, patterns)


def load(path: str | None) -> Families:
    """The families of ``path``, or open families when none is configured."""
    if not path:
        return OPEN
    p = Path(path)
    return parse(p.read_bytes(), p.name)

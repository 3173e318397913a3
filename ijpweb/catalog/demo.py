"""A demo catalog: the fictional Lumen Microscopy Facility.

3 investigations, 42 datasets of 3 types (widefield, confocal, lightsheet) with
parameters (number of channels, exposure, objective), a few hundred datafiles of several
formats, and 3 users with different memberships. Deterministic: the same every time.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ..models import (
    CatalogUser,
    Datafile,
    DatafileFormat,
    Dataset,
    DatasetParameter,
    DatasetType,
    Investigation,
    InvestigationUser,
    ParameterType,
)
from .embedded import hash_password

USERS = [
    # name, full name, password, investigations
    ("alice", "Alice Moreau", "alice-demo", ["LMF-2026-001", "LMF-2026-002"]),
    ("bob", "Bob Okafor", "bob-demo", ["LMF-2026-002", "LMF-2026-003"]),
    ("carol", "Carol Lindqvist", "carol-demo", ["LMF-2026-003"]),
]
INVESTIGATIONS = [
    ("LMF-2026-001", "Mitochondrial dynamics in live HeLa cells"),
    ("LMF-2026-002", "Zebrafish heart development, light-sheet time lapse"),
    ("LMF-2026-003", "Root hair growth under phosphate starvation"),
]
TYPES = [
    ("widefield", "Widefield epifluorescence"),
    ("confocal", "Laser scanning confocal"),
    ("lightsheet", "Selective plane illumination"),
]
FORMATS = ["TIFF", "HDF5", "CSV", "Text", "JSON"]
PARAMETERS = [
    ("nchannels", "", "NUMERIC"),
    ("exposure_ms", "ms", "NUMERIC"),
    ("objective", "", "STRING"),
]
OBJECTIVES = ["10x/0.3 air", "20x/0.8 air", "40x/1.3 oil", "63x/1.4 oil"]


def is_empty(db) -> bool:
    return db.scalar(sa.select(sa.func.count(CatalogUser.id))) == 0


def load(db) -> dict[str, int]:
    """Create the demo catalog in ``db`` (which must not hold one yet)."""
    rng = random.Random(20261124)  # noqa: S311 - repeatable demo data, not secrets
    users = {}
    for name, full, password, _ in USERS:
        users[name] = CatalogUser(name=name, full_name=full, password_hash=hash_password(password))
    invs = {n: Investigation(name=n, title=t) for n, t in INVESTIGATIONS}
    for name, _, _, memberships in USERS:
        for inv in memberships:
            db.add(InvestigationUser(investigation=invs[inv], user=users[name]))
    types = {n: DatasetType(name=n, description=d) for n, d in TYPES}
    formats = {n: DatafileFormat(name=n, version="1") for n in FORMATS}
    ptypes = {n: ParameterType(name=n, units=u, value_type=v) for n, u, v in PARAMETERS}
    db.add_all([*users.values(), *invs.values(), *types.values(), *formats.values(), *ptypes.values()])

    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    datasets = datafiles = 0
    plan = [("LMF-2026-001", "widefield", 8), ("LMF-2026-001", "confocal", 8),
            ("LMF-2026-002", "lightsheet", 10), ("LMF-2026-002", "confocal", 4),
            ("LMF-2026-003", "widefield", 6), ("LMF-2026-003", "confocal", 6)]  # fmt: skip
    for inv_name, type_name, count in plan:
        for i in range(1, count + 1):
            channels = rng.choice([1, 2, 3, 3, 4])
            ds = Dataset(
                name=f"{type_name}-{inv_name[-3:]}-{i:03d}",
                description=f"{TYPES[[t for t, _ in TYPES].index(type_name)][1]}, {channels} channel(s)",
                complete=rng.random() < 0.8,
                investigation=invs[inv_name],
                type=types[type_name],
                create_time=start + timedelta(hours=datasets * 7),
            )
            db.add(ds)
            datasets += 1
            db.add(DatasetParameter(dataset=ds, type=ptypes["nchannels"], numericValue=float(channels)))
            db.add(
                DatasetParameter(
                    dataset=ds, type=ptypes["exposure_ms"], numericValue=float(rng.choice([20, 50, 100, 250]))
                )
            )
            db.add(DatasetParameter(dataset=ds, type=ptypes["objective"], stringValue=rng.choice(OBJECTIVES)))
            frames = rng.randint(2, 6)
            files = [
                (f"c{c}_t{f:03d}.tif", "TIFF", (2_000_000, 9_000_000))
                for c in range(1, channels + 1)
                for f in range(1, frames + 1)
            ]
            if type_name == "lightsheet":
                files.append(("stack.h5", "HDF5", (10**8, 10**9)))
            files += [
                ("metadata.json", "JSON", (900, 4000)),
                ("intensities.csv", "CSV", (5_000, 90_000)),
                ("notes.txt", "Text", (100, 2000)),
            ]
            for name, fmt, (lo, hi) in files:
                db.add(
                    Datafile(
                        name=name, file_size=rng.randint(lo, hi), dataset=ds, datafileFormat=formats[fmt]
                    )
                )
            datafiles += len(files)
    db.flush()
    return {"users": len(users), "investigations": len(invs), "datasets": datasets, "datafiles": datafiles}

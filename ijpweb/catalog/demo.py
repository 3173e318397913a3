"""A demo catalog: the fictional Lumen Microscopy Facility, in ICAT's schema.

3 investigations, 42 datasets of 3 types (widefield, confocal, lightsheet) with
parameters (number of channels, exposure, objective), a few hundred datafiles of several
formats, and 3 users whose InvestigationUser memberships, through ICAT Rules, decide what
each sees. Deterministic: the same every time.
"""

from __future__ import annotations

import io
import json
import random
import struct
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from ..models import DbCredential, utcnow
from ..passwords import hash_password
from .icatdb import TABLES as T
from .icatdb import table_name

FACILITY = ("LMF", "Lumen Microscopy Facility")
USERS = [
    # login, full name, password, investigations
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
PARAMETERS = [("nchannels", "", "NUMERIC"), ("exposure_ms", "ms", "NUMERIC"), ("objective", "", "STRING")]
OBJECTIVES = ["10x/0.3 air", "20x/0.8 air", "40x/1.3 oil", "63x/1.4 oil"]
PLAN = [("LMF-2026-001", "widefield", 8), ("LMF-2026-001", "confocal", 8),
        ("LMF-2026-002", "lightsheet", 10), ("LMF-2026-002", "confocal", 4),
        ("LMF-2026-003", "widefield", 6), ("LMF-2026-003", "confocal", 6)]  # fmt: skip

# Everyone reads the facility's vocabularies; members read their investigations' data and
# write datasets, datafiles and their parameters; jobs and collections are their creators'.
RULES = [  # (what, crudFlags)
    ("Facility", "R"), ("InvestigationType", "R"), ("DatasetType", "R"), ("DatafileFormat", "R"),
    ("ParameterType", "R"), ("Application", "R"),
    ("SELECT o FROM User o WHERE o.name = :user", "R"),
    ("SELECT o FROM Investigation o JOIN o.investigationUsers iu JOIN iu.user u WHERE u.name = :user", "R"),
    ("SELECT o FROM InvestigationUser o JOIN o.investigation i JOIN i.investigationUsers iu "
     "JOIN iu.user u WHERE u.name = :user", "R"),
    ("SELECT o FROM Dataset o JOIN o.investigation i JOIN i.investigationUsers iu "
     "JOIN iu.user u WHERE u.name = :user", "CRUD"),
    ("SELECT o FROM DatasetParameter o JOIN o.dataset ds JOIN ds.investigation i "
     "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user", "CRUD"),
    ("SELECT o FROM Datafile o JOIN o.dataset ds JOIN ds.investigation i "
     "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user", "CRUD"),
    ("SELECT o FROM DatafileParameter o JOIN o.datafile df JOIN df.dataset ds JOIN ds.investigation i "
     "JOIN i.investigationUsers iu JOIN iu.user u WHERE u.name = :user", "CRUD"),
    ("SELECT o FROM Job o WHERE o.createId = :user", "CRUD"),
    ("SELECT o FROM DataCollection o WHERE o.createId = :user", "CRUD"),
    ("SELECT o FROM DataCollectionDataset o JOIN o.dataCollection c WHERE c.createId = :user", "CRUD"),
    ("SELECT o FROM DataCollectionDatafile o JOIN o.dataCollection c WHERE c.createId = :user", "CRUD"),
]  # fmt: skip


def tiff(width: int, height: int, pixels: bytes) -> bytes:
    """A minimal valid baseline TIFF: 8-bit greyscale, one strip."""
    entries = [
        (256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, height), (279, 4, 1, len(pixels)),
    ]  # fmt: skip
    ifd_offset = 8 + len(pixels)
    out = io.BytesIO()
    out.write(b"II*\x00" + struct.pack("<I", ifd_offset) + pixels)
    out.write(struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        out.write(struct.pack("<HHI", tag, kind, count) + packed)
    out.write(struct.pack("<I", 0))
    return out.getvalue()


def hdf5(noise: bytes, dataset: str) -> bytes:
    """A small real HDF5 file (h5py), so that the dataset page's preview shows its tree: a
    NeXus-like entry with an image stack made from ``noise`` and a few attributes."""
    import h5py
    import numpy as np

    out = io.BytesIO()
    with h5py.File(out, "w") as f:
        f.attrs["facility"] = FACILITY[1]
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["title"] = dataset
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        frames = np.frombuffer(noise, dtype=np.uint8)[: len(noise) // 64 * 64].reshape(-1, 8, 8)
        stack = data.create_dataset("stack", data=frames, compression="gzip")
        stack.attrs["units"] = "counts"
        data.create_dataset("z_um", data=np.linspace(0.0, 2.0 * len(frames), len(frames)))
        instrument = entry.create_group("instrument")
        instrument.create_dataset("objective", data="20x/0.8 air")
        instrument.create_dataset("exposure_ms", data=50.0)
    return out.getvalue()


def contents(rng: random.Random, name: str, fmt: str, dataset: str) -> bytes:
    """Small real contents for a demo datafile, so demo jobs have data to read."""
    if fmt == "TIFF":
        return tiff(16, 16, bytes(rng.randrange(256) for _ in range(256)))
    if fmt == "CSV":
        rows = ["frame,channel,mean_intensity"]
        rows += [f"{t},{c},{rng.uniform(100, 4000):.2f}" for t in range(1, 6) for c in range(1, 3)]
        return ("\n".join(rows) + "\n").encode()
    if fmt == "JSON":
        return json.dumps(
            {"dataset": dataset, "microscope": rng.choice(["LMF-A", "LMF-B"])}, indent=2
        ).encode()
    if fmt == "HDF5":
        return hdf5(bytes(rng.randrange(256) for _ in range(504)), dataset)
    return f"Notes for {dataset}: sample mounted, focus checked.\n".encode()


def is_empty(db) -> bool:
    conn = db.connection()
    return conn.execute(sa.select(sa.func.count()).select_from(T["Facility"])).scalar() == 0


def load(db, store=None) -> dict[str, int]:
    """Create the demo catalog (the caller checks it is not there yet); with a FileStore,
    write each datafile's contents too, at a location signed with the store's key."""
    conn = db.connection()
    rng = random.Random(20261124)  # noqa: S311 - repeatable demo data, not secrets
    now = utcnow()

    def add(entity: str, **values) -> int:
        values.setdefault("createId", "simple/root")
        values.setdefault("createTime", now)
        return conn.execute(T[entity].insert().values(**values)).inserted_primary_key[0]

    facility = add("Facility", name=FACILITY[0], fullName=FACILITY[1])
    for what, flags in RULES:
        add("Rule", what=what, crudFlags=flags)
    users = {}
    for login, full, password, _ in USERS:
        users[login] = add("User", name=f"db/{login}", fullName=full)
        db.add(DbCredential(username=login, password_hash=hash_password(password)))
    itype = add("InvestigationType", name="experiment", facility_id=facility)
    invs = {
        name: add("Investigation", name=name, visitId="1", title=title, facility_id=facility, type_id=itype)
        for name, title in INVESTIGATIONS
    }
    for login, _, _, memberships in USERS:
        for inv in memberships:
            add("InvestigationUser", user_id=users[login], investigation_id=invs[inv], role="member")
    types = {n: add("DatasetType", name=n, description=d, facility_id=facility) for n, d in TYPES}
    formats = {n: add("DatafileFormat", name=n, version="1", facility_id=facility) for n in FORMATS}
    ptypes = {
        n: add("ParameterType", name=n, units=u, valueType=v, facility_id=facility) for n, u, v in PARAMETERS
    }

    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    datasets = datafiles = 0
    for inv_name, type_name, count in PLAN:
        for i in range(1, count + 1):
            channels = rng.choice([1, 2, 3, 3, 4])
            ds = add(
                "Dataset",
                name=f"{type_name}-{inv_name[-3:]}-{i:03d}",
                description=f"{dict(TYPES)[type_name]}, {channels} channel(s)",
                complete=rng.random() < 0.8,
                investigation_id=invs[inv_name],
                type_id=types[type_name],
                startDate=start + timedelta(hours=datasets * 7),
            )
            datasets += 1
            exposure = float(rng.choice([20, 50, 100, 250]))
            add("DatasetParameter", dataset_id=ds, type_id=ptypes["nchannels"], numericValue=float(channels))
            add("DatasetParameter", dataset_id=ds, type_id=ptypes["exposure_ms"], numericValue=exposure)
            add(
                "DatasetParameter",
                dataset_id=ds,
                type_id=ptypes["objective"],
                stringValue=rng.choice(OBJECTIVES),
            )
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
                size = rng.randint(lo, hi)
                df = add("Datafile", name=name, fileSize=size, dataset_id=ds, datafileFormat_id=formats[fmt])
                if store is not None:  # real, small contents: the catalog then records their size
                    location, size, crc = store.put(
                        df, io.BytesIO(contents(rng, name, fmt, f"{type_name}-{i}"))
                    )
                    conn.execute(
                        T["Datafile"]
                        .update()
                        .where(T["Datafile"].c.id == df)
                        .values(location=location, fileSize=size, checksum=f"{crc:08x}")
                    )
            datafiles += len(files)
    db.flush()
    return {"users": len(users), "investigations": len(invs), "datasets": datasets, "datafiles": datafiles}


def scale(conn, investigations: int, datasets_each: int, files_each: int, members: dict[str, int],
          big_dataset_files: int = 0, prefix: str = "SCALE") -> dict[str, int]:  # fmt: skip
    """Grow the demo catalog in bulk (for the benchmarks and the query-plan tests): more
    investigations of ``datasets_each`` datasets (of the demo's types, in turn) of
    ``files_each`` datafiles each, and one more dataset of ``big_dataset_files`` files in the
    first of them; each demo user in ``members`` belongs to that many of the new
    investigations (the first ones). Rows are written many at a time with ids of their
    own, then the id sequences are moved past them (PostgreSQL)."""
    rows = lambda entity: conn.execute(sa.select(sa.func.coalesce(sa.func.max(T[entity].c.id), 0))).scalar()  # noqa: E731
    facility = conn.execute(sa.select(T["Facility"].c.id).limit(1)).scalar()
    itype = conn.execute(sa.select(T["InvestigationType"].c.id).limit(1)).scalar()
    types = list(conn.execute(sa.select(T["DatasetType"].c.id).order_by(T["DatasetType"].c.id)).scalars())
    fmt = conn.execute(sa.select(T["DatafileFormat"].c.id).limit(1)).scalar()
    users = dict(conn.execute(sa.select(T["User"].c.name, T["User"].c.id)).all())
    now, who = utcnow(), "simple/root"
    stamp = {"createId": who, "createTime": now, "modId": who, "modTime": now}
    inv0, ds0, df0, iu0 = rows("Investigation"), rows("Dataset"), rows("Datafile"), rows("InvestigationUser")
    conn.execute(T["Investigation"].insert(), [
        {"id": inv0 + i, "name": f"{prefix}-{i:05d}", "visitId": "1", "title": f"Scale investigation {i}",
         "facility_id": facility, "type_id": itype, **stamp} for i in range(1, investigations + 1)])  # fmt: skip
    iu = [
        {
            "id": iu0 + n + 1,
            "user_id": users[f"db/{login}"],
            "investigation_id": inv0 + i,
            "role": "member",
            **stamp,
        }
        for n, (login, i) in enumerate((login, i) for login, k in members.items() for i in range(1, k + 1))
    ]
    if iu:
        conn.execute(T["InvestigationUser"].insert(), iu)
    datasets, datafiles = [], []
    n_ds = n_df = 0

    def dataset(inv: int, name: str, files: int) -> None:
        nonlocal n_ds, n_df
        n_ds += 1
        datasets.append({"id": ds0 + n_ds, "name": name, "investigation_id": inv, "complete": True,
                         "type_id": types[n_ds % len(types)], **stamp})  # fmt: skip
        for f in range(files):
            n_df += 1
            datafiles.append({"id": df0 + n_df, "name": f"file-{f:05d}.h5", "dataset_id": ds0 + n_ds,
                              "fileSize": 1000 + f, "datafileFormat_id": fmt, **stamp})  # fmt: skip

    def flush(force: bool = False) -> None:
        if force or len(datafiles) >= 50_000:
            if datasets:
                conn.execute(T["Dataset"].insert(), datasets)
            if datafiles:
                conn.execute(T["Datafile"].insert(), datafiles)
            datasets.clear()
            datafiles.clear()

    for i in range(1, investigations + 1):
        for d in range(1, datasets_each + 1):
            dataset(inv0 + i, f"{prefix.lower()}-{i:05d}-{d:04d}", files_each)
            flush()
    if big_dataset_files:
        dataset(inv0 + 1, f"{prefix.lower()}-big", big_dataset_files)
    flush(force=True)
    if conn.dialect.name == "postgresql":
        for entity in ("Investigation", "InvestigationUser", "Dataset", "Datafile"):
            top = sa.select(sa.func.max(T[entity].c.id)).scalar_subquery()
            conn.execute(
                sa.select(sa.func.setval(sa.func.pg_get_serial_sequence(table_name(entity), "id"), top))
            )
    return {"investigations": investigations, "datasets": n_ds, "datafiles": n_df}

#!/usr/bin/env python3
"""Copy datafile: copy the one selected datafile into the one selected dataset."""

import sys
import tempfile

from icat.ids import DataSelection

from ijpweb.jobscript import IjpArgumentParser, icat_client, ids_client

args = IjpArgumentParser(description=__doc__).parse_args()
if len(args.datasetIds) != 1 or len(args.datafileIds) != 1:
    sys.exit("copy_datafile: select exactly one dataset (the target) and one datafile (the source)")
icat, ids = icat_client(args), ids_client(args)
(source,) = icat.search(
    f"SELECT df FROM Datafile df WHERE df.id = {args.datafileIds[0]} INCLUDE df.datafileFormat"
)
with tempfile.TemporaryFile() as tmp:
    with ids.getData(DataSelection({"datafileIds": args.datafileIds})) as data:
        while chunk := data.read(1 << 16):
            tmp.write(chunk)
    tmp.seek(0)
    fmt = (source.get("datafileFormat") or {}).get("id")
    new_id = ids.put(
        tmp, source["name"], args.datasetIds[0], fmt, description=f"copy of datafile {source['id']}"
    )
print(
    f"copied datafile {source['id']} {source['name']!r} to dataset {args.datasetIds[0]} as datafile {new_id}"
)

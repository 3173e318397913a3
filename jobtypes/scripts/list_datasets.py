#!/usr/bin/env python3
"""Dataset lister: read every datafile of the datasets through IDS; print name, size and
CRC-32, and say whether they agree with the catalog."""

import sys
import zlib

from icat.ids import DataSelection

from ijpweb.jobscript import IjpArgumentParser, icat_client, ids_client

args = IjpArgumentParser(description=__doc__).parse_args()
if not args.datasetIds:
    sys.exit("list_datasets: select at least one dataset")
icat, ids = icat_client(args), ids_client(args)
problems = 0
for dataset in args.datasetIds:
    (ds,) = icat.search(f"SELECT ds FROM Dataset ds WHERE ds.id = {dataset}")
    files = icat.search(f"SELECT df FROM Datafile df WHERE df.dataset.id = {dataset} ORDER BY df.name")
    print(f"dataset {dataset} {ds['name']}: {len(files)} datafile(s)")
    for df in files:
        size, crc = 0, 0
        with ids.getData(DataSelection({"datafileIds": [df["id"]]})) as data:
            while chunk := data.read(1 << 16):
                size += len(chunk)
                crc = zlib.crc32(chunk, crc)
        ok = size == df.get("fileSize") and f"{crc:08x}" == df.get("checksum")
        problems += not ok
        print(f"  {df['name']:24} {size:>10} bytes  crc32 {crc:08x}  {'ok' if ok else 'MISMATCH'}")
print("all datafiles agree with the catalog" if not problems else f"{problems} datafile(s) disagree")
sys.exit(1 if problems else 0)

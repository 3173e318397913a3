#!/usr/bin/env python3
"""Create datafile: put --contents into a new datafile --filename of the one dataset."""

import io
import sys

from ijpweb.jobscript import IjpArgumentParser, icat_client, ids_client

parser = IjpArgumentParser(description=__doc__)
parser.add_argument("--filename", required=True)
parser.add_argument("--contents", default="")
args = parser.parse_args()
if len(args.datasetIds) != 1:
    sys.exit(f"create_datafile: needs exactly one dataset, got {len(args.datasetIds)}")
(dataset,) = args.datasetIds
formats = icat_client(args).search("SELECT f.id FROM DatafileFormat f WHERE f.name = 'Text'")
new_id = ids_client(args).put(
    io.BytesIO(args.contents.encode()), args.filename, dataset, formats[0] if formats else None
)
print(
    f"created datafile {new_id} {args.filename!r} in dataset {dataset} ({len(args.contents.encode())} bytes)"
)

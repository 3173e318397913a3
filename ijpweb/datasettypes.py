"""Dataset-type parameters: the IJP ``<jobDatasetType>`` XML (ijp-formats.md §2.1).

Each file lists ``<datasetTypes>`` and ``<jobDatasetParameter><name/><query/>``; for a
dataset type, the parameters of every file that lists it are merged in file order. A
query is ICAT's concise syntax or JPQL, with ``${datasetId}`` standing for the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .xmlfiles import FileProblem, XMLDirectory, XMLFileError, local, parse_bytes, text_of

DATASET_ID = "${datasetId}"


@dataclass(frozen=True)
class ParameterDef:
    name: str
    query: str
    source: str


@dataclass(frozen=True)
class DatasetTypeFile:
    dataset_types: tuple[str, ...]
    parameters: tuple[ParameterDef, ...]


def parse_file(data: bytes, file: str) -> list[DatasetTypeFile]:
    root = parse_bytes(data, file)
    types: list[str] = []
    params: list[ParameterDef] = []
    for child in root:
        name = local(child)
        if name == "datasetTypes" and text_of(child):
            types.append(text_of(child))
        elif name == "jobDatasetParameter":
            fields = {local(c): text_of(c) for c in child}
            if not fields.get("name") or not fields.get("query"):
                raise XMLFileError(file, child.sourceline, "a <jobDatasetParameter> needs <name> and <query>")
            params.append(ParameterDef(fields["name"], fields["query"], file))
    if not types:
        raise XMLFileError(file, root.sourceline, "no <datasetTypes> listed")
    from .catalog.jpql import QueryError, compile_query

    for p in params:
        try:
            compile_query(p.query, {"user": ""}, batch="datasetId")
        except QueryError as e:
            raise XMLFileError(file, None, f"parameter {p.name!r}: {e}") from None
    return [DatasetTypeFile(tuple(types), tuple(params))]


class DatasetTypes:
    def __init__(self, directory: str | Path, interval: float = 2.0):
        self._dir = XMLDirectory(directory, parse_file, interval)

    def parameters_for(self, type_name: str) -> list[ParameterDef]:
        out: list[ParameterDef] = []
        for f in self._dir.snapshot().items:
            if type_name in f.dataset_types:
                out.extend(f.parameters)
        return out

    @property
    def problems(self) -> list[FileProblem]:
        return list(self._dir.snapshot().problems)

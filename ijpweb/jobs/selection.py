"""Resolving a selection: the datasets and datafiles a user named, as the catalog shows
them to that user, with each dataset's type parameters; and one dataset in detail.

No Pyramid here: it takes the catalog, a catalog session and plain values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..catalog import Catalog, DatafileQuery, DatafileView, DatasetView, Page, ParameterView
from ..planning import DatasetInfo, Selection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedSelection:
    selection: Selection
    datasets: list  # DatasetView
    datafiles: list  # DatafileView
    missing_datasets: list[int]
    missing_datafiles: list[int]
    parameter_errors: list[str]

    @property
    def not_visible(self) -> str:
        return not_visible(self.missing_datasets, self.missing_datafiles)


def not_visible(dataset_ids: Sequence[int], datafile_ids: Sequence[int]) -> str:
    """What to tell a user who named inputs the catalog does not show them ("" if none)."""
    missing = [f"dataset {i}" for i in dataset_ids] + [f"datafile {i}" for i in datafile_ids]
    return "not found or not visible to you: " + ", ".join(missing) if missing else ""


@dataclass(frozen=True)
class DatasetDetail:
    dataset: DatasetView
    parameters: list[ParameterView]  # the catalog's
    job_parameters: dict[str, object]  # the dataset type's, which option conditions use
    datafiles: Page[DatafileView]  # one page of them


def dataset_detail(
    catalog: Catalog,
    session_id: str,
    datasettypes,
    dataset_id: int,
    files: DatafileQuery = DatafileQuery(),  # noqa: B008 - frozen
) -> DatasetDetail | None:
    """One dataset as this user sees it, with its parameters and a page of its datafiles
    (``files``); None if not visible."""
    found = catalog.datasets(session_id, [dataset_id])
    if not found:
        return None
    params = catalog.job_parameters(session_id, found, datasettypes.parameters_for)
    return DatasetDetail(
        found[0],
        catalog.dataset_parameters(session_id, dataset_id),
        params.get(dataset_id, {}),
        catalog.dataset_datafiles(session_id, dataset_id, files),
    )


def resolve_selection(
    catalog: Catalog,
    session_id: str,
    datasettypes,
    dataset_ids: Sequence[int],
    datafile_ids: Sequence[int],
) -> ResolvedSelection:
    """The selection as this user sees it, with each dataset's type parameters."""
    datasets = catalog.datasets(session_id, list(dict.fromkeys(dataset_ids)))
    datafiles = catalog.datafiles(session_id, list(dict.fromkeys(datafile_ids)))
    errors: list[str] = []
    try:
        params = catalog.job_parameters(session_id, datasets, datasettypes.parameters_for)
    except ValueError as e:  # a bad query in a dataset-type file: staff must fix it
        log.error("dataset-type parameters: %s", e)
        errors.append(str(e))
        params = {d.id: {} for d in datasets}
    infos = tuple(DatasetInfo(d.id, d.type_name, params.get(d.id, {})) for d in datasets)
    seen_ds = {d.id for d in datasets}
    seen_df = {f.id for f in datafiles}
    return ResolvedSelection(
        Selection(infos, tuple(f.id for f in datafiles)),
        datasets,
        datafiles,
        [i for i in dataset_ids if i not in seen_ds],
        [i for i in datafile_ids if i not in seen_df],
        errors,
    )

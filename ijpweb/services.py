"""Per-process services (job types, dataset types) and per-request ones (the catalog)."""

from .catalog.embedded import EmbeddedCatalog
from .catalog.ids import FileStore, Ids, Prepared
from .datasettypes import DatasetTypes
from .jobtypes import JobTypes


def includeme(config):
    s = config.registry.settings["ijp"]
    config.registry["ijp.jobtypes"] = JobTypes(s.jobtypes_dir, s.reload_seconds)
    config.registry["ijp.datasettypes"] = DatasetTypes(s.datasettypes_dir, s.reload_seconds)

    config.add_request_method(lambda r: r.registry["ijp.jobtypes"].current(), "jobtypes", reify=True)
    config.add_request_method(lambda r: r.registry["ijp.datasettypes"], "datasettypes", reify=True)
    config.add_request_method(
        lambda r: EmbeddedCatalog(r.dbsession, s.session_minutes, s.anon, s.root_users),
        "catalog",
        reify=True,
    )
    config.add_request_method(lambda r: r.registry.settings["ijp"], "ijp", reify=True)
    config.registry["ijp.filestore"] = FileStore(s.filestore)
    config.registry["ijp.prepared"] = Prepared()
    config.add_request_method(lambda r: Ids(r.catalog, r.registry["ijp.filestore"]), "ids", reify=True)

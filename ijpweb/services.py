"""Per-process services (job types, dataset types, the catalog for ICAT) and per-request
ones (the embedded catalog, which reads the request's database session)."""

from .catalog.embedded import CatalogLimits, EmbeddedCatalog
from .catalog.icatserver import IcatData, IcatServerCatalog
from .catalog.ids import EmbeddedData, FileStore, Ids, Prepared, server_key
from .catalog.jpql import Limits
from .datasettypes import DatasetTypes
from .families import load as load_families
from .jobtypes import JobTypes
from .paging import Cursors


def includeme(config):
    s = config.registry.settings["ijp"]
    config.registry["ijp.jobtypes"] = JobTypes(s.jobtypes_dir, s.reload_seconds)
    config.registry["ijp.datasettypes"] = DatasetTypes(s.datasettypes_dir, s.reload_seconds)
    config.add_request_method(lambda r: r.registry["ijp.jobtypes"].current(), "jobtypes", reify=True)
    config.add_request_method(lambda r: r.registry["ijp.datasettypes"], "datasettypes", reify=True)
    config.add_request_method(lambda r: r.registry.settings["ijp"], "ijp", reify=True)
    # one signer of list cursors (ijpweb.paging), keyed from the auth secret that every
    # process of a deployment shares: request.cursors on every face
    config.registry["ijp.cursors"] = Cursors(s.auth_secret)
    config.add_request_method(lambda r: r.registry["ijp.cursors"], "cursors", reify=True)
    config.registry["ijp.families"] = load_families(s.families_file)

    if s.catalog == "icat":
        # a facility's ICAT and IDS; the embedded faces (/icat, /ids) are not served
        catalog = IcatServerCatalog(s.icat_url, s.ids_url, s.catalog_timeout)
        config.registry["ijp.catalog_for"] = lambda db: catalog
        config.add_request_method(lambda r: catalog, "catalog", reify=True)
        # downloads and uploads through the facility's IDS with the user's session
        config.add_request_method(lambda r: IcatData(catalog), "data", reify=True)
        return
    # the catalog for a database session (a request's, or a scheduled job's)
    limits = CatalogLimits(
        max_entities=s.catalog_max_entities,
        query_seconds=s.catalog_query_seconds,
        query=Limits(s.catalog_query_max_length, s.catalog_query_max_depth, s.catalog_query_max_joins),
        restrict_joins=s.catalog_restrict_joins,
        max_writes=s.catalog_max_writes,
        user_queries=s.catalog_user_queries,
    )
    config.registry["ijp.catalog_for"] = lambda db: EmbeddedCatalog(
        db, s.session_minutes, s.anon, s.root_users, limits
    )
    config.add_request_method(lambda r: r.registry["ijp.catalog_for"](r.dbsession), "catalog", reify=True)
    # the IDS key signs datafile locations: without one the portal does not start
    config.registry["ijp.filestore"] = FileStore(s.filestore, server_key(s.ids_key, s.ids_key_file))
    config.registry["ijp.prepared"] = Prepared(s.ids_max_prepared)
    config.add_request_method(lambda r: Ids(r.catalog, r.registry["ijp.filestore"]), "ids", reify=True)
    # downloads and uploads of the pages and /api/v1 through the embedded IDS, as the user
    config.add_request_method(lambda r: EmbeddedData(r.ids, r.ijp.zip_max_files), "data", reify=True)
    # the embedded catalog's ICAT REST and IDS faces, at their standard paths
    config.add_route("ids", "/ids/{method}")
    config.add_route("icat.session", "/icat/session")
    config.add_route("icat.session.one", "/icat/session/{sid}")
    config.add_route("icat.entityManager", "/icat/entityManager")
    config.add_route("icat.version", "/icat/version")
    config.add_route("icat.properties", "/icat/properties")
    config.scan(".views.icat")
    config.scan(".views.ids")

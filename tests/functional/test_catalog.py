"""The embedded catalog on the demo data: visibility, dataset-type parameters, harvest."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from ijpweb.batch import BatchState
from ijpweb.batch.harvest import harvest
from ijpweb.catalog import AuthenticationError, DatasetQuery, SessionError
from ijpweb.catalog.embedded import EmbeddedCatalog
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.datasettypes import DatasetTypes, parse_file
from ijpweb.models import CatalogSession, Job, utcnow
from ijpweb.states import JobStatus
from ijpweb.xmlfiles import XMLFileError

from .test_security import make_job


@pytest.fixture
def catalog(dbsession):
    return EmbeddedCatalog(dbsession)


@pytest.fixture
def bob(catalog):
    return catalog.login("db", {"username": "bob", "password": "bob-demo"}).session_id


def test_login_logout_and_bad_credentials(catalog, dbsession):
    sid = catalog.login("db", {"username": "carol", "password": "carol-demo"}).session_id
    assert catalog.user_name(sid) == "db/carol"
    dbsession.get(CatalogSession, sid).expires_at = utcnow() + timedelta(minutes=5)  # nearly expired
    assert catalog.remaining_minutes(sid) <= 5
    catalog.refresh(sid)
    assert catalog.remaining_minutes(sid) > 119
    catalog.logout(sid)
    with pytest.raises(SessionError):
        catalog.user_name(sid)
    for creds in ({"username": "carol", "password": "x"}, {"username": "nobody", "password": "x"}):
        with pytest.raises(AuthenticationError, match="not correct"):
            catalog.login("db", creds)


def test_users_see_their_investigations_only(catalog, bob, dbsession):
    page = catalog.search_datasets(bob, DatasetQuery(per_page=200))
    assert {d.investigation for d in page.items} == {"LMF-2026-002", "LMF-2026-003"}
    assert page.total == 26
    assert page.facets["investigations"] == ["LMF-2026-002", "LMF-2026-003"]
    ds, inv, df = T["Dataset"], T["Investigation"], T["Datafile"]
    conn = dbsession.connection()
    hidden = (
        conn.execute(
            sa.select(ds.c.id)
            .join(inv, ds.c.investigation_id == inv.c.id)
            .where(inv.c.name == "LMF-2026-001")
        )
        .scalars()
        .first()
    )
    assert catalog.datasets(bob, [hidden]) == []
    files = conn.execute(sa.select(df.c.id).where(df.c.dataset_id == hidden)).scalars().all()
    assert files and catalog.datafiles(bob, files) == []
    assert catalog.dataset_parameters(bob, hidden) == []
    assert catalog.query(bob, "SELECT COUNT(ds) FROM Dataset ds") == [26]
    assert catalog.query(bob, "SELECT ds.name FROM Dataset ds WHERE ds.id = :id", {"id": hidden}) == []


def test_anonymous_login_only_when_enabled(dbsession):
    with pytest.raises(AuthenticationError, match="not available"):
        EmbeddedCatalog(dbsession).login("anon", {})
    anon = EmbeddedCatalog(dbsession, anon=True)
    assert anon.authenticators() == ["db", "anon"]
    sid = anon.login("anon", {}).session_id
    assert anon.user_name(sid) == "anon/anon"
    assert anon.search_datasets(sid, DatasetQuery()).total == 0


def test_job_parameters_m_queries_for_n_datasets(catalog, bob, dbsession, app):
    datasets = catalog.search_datasets(bob, DatasetQuery(per_page=200)).items
    types = DatasetTypes(app.registry.settings["ijp"].datasettypes_dir)
    statements = []
    engine = dbsession.get_bind()

    def count(_conn, _cursor, statement, *_args):
        words = statement.split()
        # not queries: the time limit's savepoint and statement_timeout on PostgreSQL
        if words[0] not in ("SAVEPOINT", "RELEASE", "ROLLBACK") and "set_config(" not in statement:
            statements.append(words[0:6])

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        params = catalog.job_parameters(bob, datasets, types.parameters_for)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    m = len(types.parameters_for("confocal"))
    # 2 for the visibility check (user + datasets), then one per parameter definition
    assert len(statements) <= m + 2, statements
    df, fmt = T["Datafile"], T["DatafileFormat"]
    for d in datasets:
        hdf = (
            dbsession.connection()
            .execute(
                sa.select(sa.func.count(df.c.id))
                .join(fmt, df.c.datafileFormat_id == fmt.c.id)
                .where(df.c.dataset_id == d.id, fmt.c.name == "HDF5")
            )
            .scalar()
        )
        assert params[d.id]["numHdfFiles"] == hdf
        assert isinstance(params[d.id]["numChannels"], float)
        assert params[d.id]["objective"]
        # JPQL and the concise syntax, in one file, for the same kind of quantity
        csv = catalog.query(
            bob, f"COUNT(Datafile) <-> Dataset [id={d.id}] <-> Datafile [datafileFormat.name='CSV']"
        )
        assert params[d.id]["numCsvFiles"] == csv[0] == 1
        assert params[d.id]["meanExposure"] in (20.0, 50.0, 100.0, 250.0)


def test_dataset_type_file_errors_name_the_file():
    with pytest.raises(XMLFileError, match="bad.xml.*needs <name> and <query>"):
        parse_file(
            b"<jobDatasetType><datasetTypes>x</datasetTypes><jobDatasetParameter><name>n</name></jobDatasetParameter></jobDatasetType>",
            "bad.xml",
        )
    with pytest.raises(XMLFileError, match="parameter 'n'"):
        parse_file(
            b"<jobDatasetType><datasetTypes>x</datasetTypes><jobDatasetParameter><name>n</name><query>COUNT(</query></jobDatasetParameter></jobDatasetType>",
            "bad.xml",
        )


class DeadBackend:
    name = "dead"

    def states(self, ids):
        raise ConnectionError("connection refused")


class FixedBackend:
    name = "fixed"

    def __init__(self, states):
        self._states = states

    def states(self, ids):
        return {i: self._states[i] for i in ids if i in self._states}


def test_harvest_one_call_per_backend_and_a_dead_backend_shows_unknown(dbsession):
    a = make_job(dbsession, "alice", JobStatus.RUNNING)
    a.backend, a.backend_job_id = "dead", "1"
    b = make_job(dbsession, "alice", JobStatus.QUEUED)
    b.backend, b.backend_job_id = "fixed", "7"
    c = make_job(dbsession, "alice", JobStatus.QUEUED)
    c.backend, c.backend_job_id = "fixed", "8"
    done = make_job(dbsession, "alice", JobStatus.COMPLETED)
    done.backend, done.backend_job_id = "fixed", "9"
    calls = []
    fixed = FixedBackend({"7": BatchState(JobStatus.FAILED, 2, "exit code 2")})
    original = fixed.states
    fixed.states = lambda ids: calls.append(list(ids)) or original(ids)
    changed = harvest(dbsession, {"dead": DeadBackend(), "fixed": fixed})
    assert calls == [["7", "8"]]  # live jobs only, in one call
    assert changed == {"dead": 1, "fixed": 2}
    assert a.status == JobStatus.UNKNOWN and "did not answer" in a.reason
    assert (b.status, b.exit_code, b.reason) == (JobStatus.FAILED, 2, "exit code 2") and b.finished_at
    assert c.status == JobStatus.UNKNOWN
    assert done.status == JobStatus.COMPLETED
    assert dbsession.get(Job, a.id).status == JobStatus.UNKNOWN


def test_expired_sessions_are_purged(dbsession, catalog):
    from datetime import timedelta

    from ijpweb.batch.harvest import purge_expired_sessions
    from ijpweb.models import CatalogSession, utcnow

    old = catalog.login("db", {"username": "bob", "password": "bob-demo"})
    new = catalog.login("db", {"username": "bob", "password": "bob-demo"})
    dbsession.get(CatalogSession, old.session_id).expires_at = utcnow() - timedelta(minutes=1)
    dbsession.flush()
    assert purge_expired_sessions(dbsession) >= 1
    dbsession.expire_all()
    assert dbsession.get(CatalogSession, old.session_id) is None
    assert catalog.user_name(new.session_id) == "db/bob"

"""Issue 11, point 4: a SLURM backend's nodes, against the real single-node test cluster
(bin/slurm-test-cluster): sinfo lists them, scontrol drains (with a reason) and resumes
them, and the console does both as staff, showing SLURM's refusals as messages."""

import subprocess

import pytest
import sqlalchemy as sa

from ijpweb import health, main
from ijpweb.batch import BatchError
from ijpweb.batch.slurm import SlurmBackend
from ijpweb.models import AuditEntry

from ..conftest import NO_SANDBOX, ROOT, make_testapp, portal_settings

pytestmark = pytest.mark.once  # the cluster is the system under test, not the database

NODE = "localhost"  # bin/slurm-test-cluster's one node
REASON = "disk check: 'sdb' = failing | see #42"


@pytest.fixture
def undrained(slurm_cluster):
    """Whatever a test does, the node takes jobs again afterwards (other tests share it)."""
    yield
    subprocess.run(["scontrol", "update", f"NodeName={NODE}", "State=RESUME"], capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "SLURM_CONF": slurm_cluster}, check=False)  # fmt: skip


def test_list_drain_see_drain_resume(slurm_cluster, tmp_path, undrained):
    slurm = SlurmBackend("slurm", tmp_path / "jobs", slurm_conf=slurm_cluster)
    slurm.probe()  # scontrol ping: the controller is up
    dead = SlurmBackend("dead", tmp_path / "dead", slurm_conf=str(tmp_path / "nowhere.conf"), timeout=5)
    with pytest.raises(BatchError, match="^scontrol (ping: |did not answer)"):
        dead.probe()
    (node,) = slurm.nodes()
    assert (node.name, node.state.rstrip("*"), node.cpus_alloc, node.reason) == (NODE, "idle", 0, "")
    assert node.cpus_total >= 1 and (node.load is None or node.load >= 0)
    slurm.drain(NODE, REASON)
    (node,) = slurm.nodes()
    assert node.drained and node.state in ("drained", "draining") and node.reason == REASON
    slurm.resume(NODE)
    (node,) = slurm.nodes()
    # (idle* for a moment: SLURM pings the node it was given back)
    assert (node.state.rstrip("*"), node.drained, node.reason) == ("idle", False, "")
    # SLURM's refusal is a BatchError with its words
    with pytest.raises(BatchError, match="scontrol failed: .*[Ii]nvalid node state"):
        slurm.resume(NODE)  # not drained
    # what never reaches scontrol
    for name in ("localhost,ghost", "node[1-2]", "ALL", "-h"):
        with pytest.raises(ValueError):
            slurm.drain(name, "x")
    with pytest.raises(ValueError):
        slurm.drain(NODE, "two\nlines")


@pytest.fixture(scope="module")
def slurm_portal(app_settings, dbengine, slurm_cluster, tmp_path_factory):
    """A portal with the local backend and a SLURM one, cluster, on the test database."""
    tmp = tmp_path_factory.mktemp("slurm-portal")
    settings = portal_settings(str(ROOT / "testing.ini"), tmp, app_settings["sqlalchemy.url"], **{
        "ijp.batch.backends": "local cluster",
        "ijp.batch.cluster.type": "slurm",
        "ijp.batch.cluster.dir": str(tmp / "cluster"),
        "ijp.batch.cluster.slurm_conf": slurm_cluster,
        **({"ijp.batch.cluster.sandbox": "none"} if NO_SANDBOX else {}),
    })  # fmt: skip
    settings["ijp.batch.local.dir"] = app_settings["ijp.batch.local.dir"]
    app = main({}, dbengine=dbengine, **settings)
    yield app
    app.registry["ijp.scheduler"].shutdown(wait=False)


def state(web) -> tuple[str, str]:
    row = web.get("/console/backends").html.find(id=f"node-cluster-{NODE}")
    cells = [c.get_text(" ", strip=True) for c in row.find_all("td")]
    return cells[1], cells[4]  # state, reason


def test_the_console_drains_and_resumes_a_node(slurm_portal, tm, dbsession, undrained):
    web = make_testapp(slurm_portal, tm, dbsession)
    web.login("alice")
    backends = slurm_portal.registry["ijp.backends"]
    health.record(dbsession, health.observe(backends, {}))  # as the harvester does each cycle
    dbsession.flush()
    listed = web.get("/api/v1/admin/backends").json["backends"]
    (cluster,) = [b for b in listed if b["name"] == "cluster"]
    assert cluster["kind"] == "slurm" and cluster["reachable"] is True
    assert [n["name"] for n in cluster["nodes"]] == [NODE]
    node_state, reason = state(web)
    assert (node_state.rstrip("*"), reason) == ("idle", "")  # (idle* if the last test just resumed it)

    page = web.get("/console/backends")
    form = next(
        f for f in page.forms.values() if f.action.endswith(f"/console/backends/cluster/nodes/{NODE}/drain")
    )
    form["reason"] = REASON
    assert form.submit(status=303).location.endswith("/console/backends?done=drain")
    node_state, reason = state(web)
    assert "drain" in node_state and reason == REASON
    page = web.get("/console/backends")
    form = next(
        f for f in page.forms.values() if f.action.endswith(f"/console/backends/cluster/nodes/{NODE}/resume")
    )
    form.submit(status=303)
    node_state, reason = state(web)
    assert (node_state.rstrip("*"), reason) == ("idle", "")  # (idle* while SLURM pings it)

    csrf = web.get_csrf_token()
    # SLURM refuses to resume a node that is not drained: its words, as a message
    refused = web.post(f"/console/backends/cluster/nodes/{NODE}/resume", {"csrf_token": csrf}, status=409)
    message = refused.html.find(role="alert").get_text()
    assert message.startswith(f"SLURM refused to resume {NODE}: scontrol failed:") and "node state" in message
    # a node sinfo does not list, a name that is no node's, and no reason: nothing asked of scontrol
    web.post("/console/backends/cluster/nodes/ghost/drain", {"csrf_token": csrf, "reason": "x"}, status=404)
    web.post("/console/backends/cluster/nodes/ALL/drain", {"csrf_token": csrf, "reason": "x"}, status=404)
    page = web.post(
        f"/console/backends/cluster/nodes/{NODE}/drain", {"csrf_token": csrf, "reason": " "}, status=400
    )
    assert (
        page.html.find(role="alert").get_text() == "reason is required: SLURM records why a node is drained"
    )
    # the JSON face: drain, see it, resume
    headers = {"X-CSRF-Token": csrf}
    resp = web.post_json(f"/api/v1/admin/backends/cluster/nodes/{NODE}/drain", {"reason": "api test"},
                         headers=headers, status=200)  # fmt: skip
    (node,) = resp.json["nodes"]
    assert "drain" in node["state"] and node["reason"] == "api test"
    resp = web.post(f"/api/v1/admin/backends/cluster/nodes/{NODE}/resume", headers=headers, status=200)
    assert resp.json["nodes"][0]["state"].rstrip("*") == "idle"
    audit = dbsession.execute(sa.select(AuditEntry.action, AuditEntry.target, AuditEntry.detail)
                              .order_by(AuditEntry.id)).all()  # fmt: skip
    target = f"node {NODE} of backend cluster"
    # the refused resume too: scontrol was asked (one that timed out may have acted)
    assert [(a, t) for a, t, _ in audit] == [("node.drain", target), ("node.resume", target), ("node.resume", target),
                                             ("node.drain", target), ("node.resume", target)]  # fmt: skip
    details = [d for _, _, d in audit]
    assert details[:2] + details[3:] == [REASON, "", "api test", ""]
    assert (
        details[2].startswith("(not done, or not confirmed: scontrol failed:") and "node state" in details[2]
    )

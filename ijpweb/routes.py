"""Every URL in one place."""

from .security import job_factory


def jm_root(prefix: str) -> str:
    """Where the original IJP's REST API lives inside the portal. The original served it at
    /ijp/rest/jm, /ijp being its context root. Mounted at a prefix whose last segment is
    ``ijp`` (``/ijp``, ``/facility/ijp``) the portal is in that context root itself, so
    the API is at ``/rest/jm`` inside it (``https://host/ijp/rest/jm``, as the original's
    clients call it); at any other prefix, and at the root, it is at ``/ijp/rest/jm``
    inside it (``https://host/ijp/rest/jm`` at the root; ``<prefix>/ijp/rest/jm`` elsewhere)."""
    return "/rest/jm" if prefix.rpartition("/")[2] == "ijp" else "/ijp/rest/jm"


def includeme(config):
    config.add_static_view("static", "ijpweb:static", cache_max_age=3600)
    config.add_route("home", "/")
    # the facility's accent colour and logo (ijp.site.*; views/dashboard.py)
    config.add_route("brand.css", "/brand.css")
    config.add_route("brand.logo", "/brand/logo")
    config.add_route("auth.login", "/login")
    config.add_route("auth.logout", "/logout")
    config.add_route("datasets.search", "/datasets")
    config.add_route("datasets.detail", "/datasets/{dataset_id:\\d+}")
    # data in and out through IDS (views/data.py)
    config.add_route("data.new_dataset", "/datasets/new")
    config.add_route("data.dataset_zip", "/datasets/{dataset_id:\\d+}/download.zip")
    config.add_route("data.upload", "/datasets/{dataset_id:\\d+}/upload")
    config.add_route("data.selection_zip", "/selection/download.zip")
    config.add_route("data.download", "/datafiles/{datafile_id:\\d+}/download")
    config.add_route("data.preview", "/datafiles/{datafile_id:\\d+}/preview")
    config.add_route("data.thumbnail", "/datafiles/{datafile_id:\\d+}/thumbnail.png")
    config.add_route("data.image", "/datafiles/{datafile_id:\\d+}/image.png")
    config.add_route("selection", "/selection")
    config.add_route("submit", "/submit")
    config.add_route("jobs.list", "/jobs")
    # several jobs at once and the list as a file (before /jobs/{job_id}, which they would match)
    config.add_route("jobs.bulk", "/jobs/bulk")
    config.add_route("jobs.export", "/jobs/export")
    config.add_route("jobs.detail", "/jobs/{job_id}", factory=job_factory)
    config.add_route("jobs.output", "/jobs/{job_id}/output/{stream}", factory=job_factory)
    # a job's output files (views/outputs.py): ?name= is the path inside its output directory
    config.add_route("jobs.outputs", "/jobs/{job_id}/outputs", factory=job_factory)
    config.add_route("jobs.file", "/jobs/{job_id}/file", factory=job_factory)
    config.add_route("jobs.preview", "/jobs/{job_id}/preview", factory=job_factory)
    config.add_route("jobs.image", "/jobs/{job_id}/image", factory=job_factory)
    config.add_route("jobs.zip", "/jobs/{job_id}/outputs.zip", factory=job_factory)
    config.add_route("jobs.cancel", "/jobs/{job_id}/cancel", factory=job_factory)
    config.add_route("jobs.delete", "/jobs/{job_id}/delete", factory=job_factory)
    config.add_route("jobs.tags", "/jobs/{job_id}/tags", factory=job_factory)
    config.add_route("jobs.resubmit", "/jobs/{job_id}/resubmit", factory=job_factory)
    # an interactive job's desktop: the viewer, and End session (views/desktop.py); the
    # websocket itself, {prefix}/desktop/ws/{job_id}, is the desktop proxy's (ijpweb.desktop)
    config.add_route("jobs.desktop", "/jobs/{job_id}/desktop", factory=job_factory)
    config.add_route("jobs.end", "/jobs/{job_id}/end", factory=job_factory)
    # comments on a job (views/comments.py)
    config.add_route("jobs.comments", "/jobs/{job_id}/comments", factory=job_factory)
    config.add_route("jobs.comment", "/jobs/{job_id}/comments/{comment_id}", factory=job_factory)
    config.add_route(
        "jobs.comment.delete", "/jobs/{job_id}/comments/{comment_id}/delete", factory=job_factory
    )
    config.add_route("staff.jobtypes", "/staff/jobtypes")  # (now the console's job types)
    # the operator's console, for staff (views/console.py); every route name under
    # console. or api.admin. is tested to be staff's alone (tests/functional/test_console.py)
    config.add_route("console.home", "/console")
    config.add_route("console.jobs", "/console/jobs")
    config.add_route("console.job.cancel", "/console/jobs/{job_id}/cancel")
    config.add_route("console.job.delete", "/console/jobs/{job_id}/delete")
    config.add_route("console.logins", "/console/logins")
    config.add_route("console.logins.revoke", "/console/logins/revoke")
    config.add_route("console.jobtypes", "/console/jobtypes")
    config.add_route("console.audit", "/console/audit")
    config.add_route("console.backends", "/console/backends")
    config.add_route("console.backend.pause", "/console/backends/{name}/pause")
    config.add_route("console.backend.resume", "/console/backends/{name}/resume")
    config.add_route("console.node.drain", "/console/backends/{name}/nodes/{node}/drain")
    config.add_route("console.node.resume", "/console/backends/{name}/nodes/{node}/resume")
    # the JSON API (views/api.py)
    config.add_route("api.openapi", "/api/v1/openapi.json")
    config.add_route("api.session", "/api/v1/session")
    config.add_route("api.jobtypes", "/api/v1/jobtypes")
    config.add_route("api.jobtype", "/api/v1/jobtypes/{name}")
    config.add_route("api.jobtype.options", "/api/v1/jobtypes/{name}/options")
    config.add_route("api.datasets", "/api/v1/datasets")
    config.add_route("api.dataset", "/api/v1/datasets/{dataset_id:\\d+}")
    config.add_route("api.dataset.datafiles", "/api/v1/datasets/{dataset_id:\\d+}/datafiles")
    config.add_route("api.dataset.zip", "/api/v1/datasets/{dataset_id:\\d+}/zip")
    config.add_route("api.datasettypes", "/api/v1/datasettypes")
    config.add_route("api.zip", "/api/v1/zip")
    config.add_route("api.datafile.content", "/api/v1/datafiles/{datafile_id:\\d+}/content")
    config.add_route("api.datafile.download", "/api/v1/datafiles/{datafile_id:\\d+}/download")
    config.add_route("api.submissions", "/api/v1/submissions")
    config.add_route("api.jobs", "/api/v1/jobs")
    config.add_route("api.jobs.cancel", "/api/v1/jobs/cancel")  # (before api.job: they would match it)
    config.add_route("api.jobs.delete", "/api/v1/jobs/delete")
    config.add_route("api.jobs.tags", "/api/v1/jobs/tags")
    config.add_route("api.jobs.export", "/api/v1/jobs/export")
    config.add_route("api.job", "/api/v1/jobs/{job_id}", factory=job_factory)
    config.add_route("api.job.cancel", "/api/v1/jobs/{job_id}/cancel", factory=job_factory)
    config.add_route("api.job.end", "/api/v1/jobs/{job_id}/end", factory=job_factory)
    config.add_route("api.job.tags", "/api/v1/jobs/{job_id}/tags", factory=job_factory)
    config.add_route("api.job.output", "/api/v1/jobs/{job_id}/output/{stream}", factory=job_factory)
    config.add_route("api.job.files", "/api/v1/jobs/{job_id}/files", factory=job_factory)
    config.add_route("api.job.file", "/api/v1/jobs/{job_id}/file", factory=job_factory)
    config.add_route("api.job.zip", "/api/v1/jobs/{job_id}/outputs.zip", factory=job_factory)
    config.add_route("api.job.comments", "/api/v1/jobs/{job_id}/comments", factory=job_factory)
    config.add_route("api.job.comment", "/api/v1/jobs/{job_id}/comments/{comment_id}", factory=job_factory)
    # the console's JSON face, for staff (views/admin.py)
    config.add_route("api.admin.jobs", "/api/v1/admin/jobs")
    config.add_route("api.admin.job", "/api/v1/admin/jobs/{job_id}")
    config.add_route("api.admin.job.cancel", "/api/v1/admin/jobs/{job_id}/cancel")
    config.add_route("api.admin.job.delete", "/api/v1/admin/jobs/{job_id}/delete")
    config.add_route("api.admin.logins", "/api/v1/admin/logins")
    config.add_route("api.admin.logins.revoke", "/api/v1/admin/logins/revoke")
    config.add_route("api.admin.jobtypes", "/api/v1/admin/jobtypes")
    config.add_route("api.admin.audit", "/api/v1/admin/audit")
    config.add_route("api.admin.backends", "/api/v1/admin/backends")
    config.add_route("api.admin.backend.pause", "/api/v1/admin/backends/{name}/pause")
    config.add_route("api.admin.backend.resume", "/api/v1/admin/backends/{name}/resume")
    config.add_route("api.admin.node.drain", "/api/v1/admin/backends/{name}/nodes/{node}/drain")
    config.add_route("api.admin.node.resume", "/api/v1/admin/backends/{name}/nodes/{node}/resume")
    # for operators' monitoring (views/health.py): no login; /metrics wants ijp.metrics.token
    config.add_route("healthz", "/healthz")
    config.add_route("metrics", "/metrics")
    # the original IJP REST API (views/jm.py), at /ijp/rest/jm on the host when the portal
    # is at the root or at /ijp (jm_root)
    jm = jm_root(config.registry.settings["ijp"].prefix)
    for name, pattern in (
        ("jm.jobtypes", "jobtype"), ("jm.jobtype", "jobtype/{name}"), ("jm.submit", "submit"),
        ("jm.status", "status"), ("jm.status.one", "status/{job_id}"), ("jm.output", "output/{job_id}"),
        ("jm.error", "error/{job_id}"), ("jm.cancel", "cancel/{job_id}"), ("jm.delete", "delete/{job_id}"),
        ("jm.provenance", "job/provenance/{job_id}"),
    ):  # fmt: skip
        config.add_route(name, f"{jm}/{pattern}")

"""Every URL in one place."""

from .security import job_factory


def includeme(config):
    config.add_static_view("static", "ijpweb:static", cache_max_age=3600)
    config.add_route("home", "/")
    config.add_route("auth.login", "/login")
    config.add_route("auth.logout", "/logout")
    config.add_route("datasets.search", "/datasets")
    config.add_route("datasets.detail", "/datasets/{dataset_id:\\d+}")
    config.add_route("selection", "/selection")
    config.add_route("submit", "/submit")
    config.add_route("jobs.list", "/jobs")
    config.add_route("jobs.detail", "/jobs/{job_id}", factory=job_factory)
    config.add_route("jobs.output", "/jobs/{job_id}/output/{stream}", factory=job_factory)
    config.add_route("jobs.cancel", "/jobs/{job_id}/cancel", factory=job_factory)
    config.add_route("jobs.delete", "/jobs/{job_id}/delete", factory=job_factory)
    config.add_route("jobs.tags", "/jobs/{job_id}/tags", factory=job_factory)
    config.add_route("jobs.resubmit", "/jobs/{job_id}/resubmit", factory=job_factory)
    config.add_route("staff.jobtypes", "/staff/jobtypes")
    # the JSON API (views/api.py)
    config.add_route("api.openapi", "/api/v1/openapi.json")
    config.add_route("api.session", "/api/v1/session")
    config.add_route("api.jobtypes", "/api/v1/jobtypes")
    config.add_route("api.jobtype", "/api/v1/jobtypes/{name}")
    config.add_route("api.jobtype.options", "/api/v1/jobtypes/{name}/options")
    config.add_route("api.datasets", "/api/v1/datasets")
    config.add_route("api.dataset", "/api/v1/datasets/{dataset_id:\\d+}")
    config.add_route("api.submissions", "/api/v1/submissions")
    config.add_route("api.jobs", "/api/v1/jobs")
    config.add_route("api.job", "/api/v1/jobs/{job_id}", factory=job_factory)
    config.add_route("api.job.cancel", "/api/v1/jobs/{job_id}/cancel", factory=job_factory)
    config.add_route("api.job.tags", "/api/v1/jobs/{job_id}/tags", factory=job_factory)
    config.add_route("api.job.output", "/api/v1/jobs/{job_id}/output/{stream}", factory=job_factory)
    # the original IJP REST API (views/jm.py)
    for name, pattern in (
        ("jm.jobtypes", "jobtype"), ("jm.jobtype", "jobtype/{name}"), ("jm.submit", "submit"),
        ("jm.status", "status"), ("jm.status.one", "status/{job_id}"), ("jm.output", "output/{job_id}"),
        ("jm.error", "error/{job_id}"), ("jm.cancel", "cancel/{job_id}"), ("jm.delete", "delete/{job_id}"),
        ("jm.provenance", "job/provenance/{job_id}"),
    ):  # fmt: skip
        config.add_route(name, f"/ijp/rest/jm/{pattern}")

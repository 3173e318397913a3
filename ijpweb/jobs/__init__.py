"""Jobs, as users deal with them, by concern (no Pyramid in any of them):

- ``selection``: the datasets and datafiles a user named, as the catalog shows them;
- ``submission``: a request to submit checked and recorded (:class:`~.submission.Submitter`);
- ``actions``: the jobs a user may act on (:func:`~.actions.owned_job`), lists, progress,
  output, cancel and delete;
- ``sessions``: the catalog sessions that jobs use, kept alive and logged out.

The background work on them lives in ijpweb.batch (the submitter, the harvest) and
ijpweb.scheduler (when it runs).
"""

from .submission import Submitter


def includeme(config):
    """One :class:`~.submission.Submitter` for every face, as ``request.submitter``."""
    registry = config.registry
    scheduler = registry["ijp.scheduler"]
    registry["ijp.submitter"] = Submitter(registry, registry.settings["ijp"], wake=scheduler.submit_soon)
    config.add_request_method(lambda r: r.registry["ijp.submitter"], "submitter", reify=True)

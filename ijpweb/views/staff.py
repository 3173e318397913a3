from pyramid.view import view_config


@view_config(
    route_name="staff.jobtypes", request_method="GET", permission="staff", renderer="staff/jobtypes.jinja2"
)
def jobtypes_page(request):
    """What loaded and what did not, with file, line and reason: for facility staff."""
    cat = request.jobtypes
    return {
        "job_types": cat.all(),
        "problems": list(cat.problems),
        "dataset_type_problems": request.datasettypes.problems,
        "directory": str(request.registry["ijp.jobtypes"].directory),
    }

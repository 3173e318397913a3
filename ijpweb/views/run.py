"""Find datasets, select inputs, pick a job type, fill its form, submit.

The selection (datasets, datafiles and the chosen job type) lives server-side with the
login, so it survives paging, searching and reloads. The "run" panel (selection, job
types, options form, what will be submitted) is one fragment, re-rendered whenever the
selection or the job type changes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.view import view_config

from .. import inputs, planning
from ..catalog import DatafileQuery, DatasetQuery
from ..catalog import pages as catalog_pages
from ..jobs.actions import owned_job
from ..jobs.selection import dataset_detail, resolve_selection
from ..jobs.submission import SubmitError, SubmitRequest, resubmission, split_tags
from ..models import WebSession
from ..security import Permission
from . import HTMX, local_path, param_text, path_id, submit_jobs, vary, wants_json

OPT = "opt:"
MAX_SELECTION = 1000
# refusals that belong to a field of the form: the job-count choice
FIELD_OF = {"mode_required": "mode", "confirmation_required": "confirm"}
PER_PAGE = 20  # datasets on a page of the search
FILES_PER_PAGE = 50  # datafiles on a page of a dataset's


def _web_session(request) -> WebSession:
    return request.dbsession.get(WebSession, request.identity.web_session)


def _selection(request) -> dict:
    sel = dict(_web_session(request).selection or {})
    return {
        "datasets": list(sel.get("datasets", [])),
        "datafiles": list(sel.get("datafiles", [])),
        "job_type": sel.get("job_type", ""),
    }


def _save_selection(request, sel: dict) -> None:
    _web_session(request).selection = sel


def _submitted_values(request, options) -> dict:
    """Option values from a form: fields named ``opt:<option or group name>``. A
    checkbox sends a hidden 'false' and, when ticked, 'true': the last one counts."""
    params = request.POST if request.method == "POST" else request.GET
    values = {}
    for o in options:
        key = OPT + o.key
        got = params.getall(key)
        if not got:
            continue
        values[o.key] = got[-1] if o.is_checkbox else (got if len(got) > 1 else got[0])
    return values


def panel(
    request, *, values=None, errors=None, message=None, mode=None, confirmed=False, tags="", notice=None
):
    """Everything the run panel shows, as the user sees the catalog now."""
    ident = request.identity
    sel = _selection(request)
    resolved = resolve_selection(
        request.catalog, ident.catalog_session, request.datasettypes, sel["datasets"], sel["datafiles"]
    )
    families = request.registry["ijp.families"]
    all_types = [jt for jt in request.jobtypes.all() if families.allows(jt.family, ident.user_name)]
    compatible = planning.compatible(all_types, resolved.selection)
    chosen = request.jobtypes.get(sel["job_type"])
    why_not = planning.incompatibility(chosen, resolved.selection) if chosen else None
    shown = planning.visible_options(chosen, resolved.selection) if chosen and not why_not else []
    form_values = planning.default_values(shown)
    if values:
        form_values.update(values)
    need = planning.choice_needed(chosen, resolved.selection) if chosen and not why_not else None
    # the <inputs> rule, for each way this selection can be submitted (one job, one per input)
    modes = planning.possible_modes(chosen, resolved.selection) if chosen and not why_not else ()
    blocked = {m: planning.inputs_problem(chosen, resolved.selection, m) for m in modes}
    blocked = {m: why for m, why in blocked.items() if why}
    submit_why = next(iter(blocked.values())) if modes and len(blocked) == len(modes) else None
    errors = dict(errors or {})
    if errors and need == "mode" and mode not in ("single", "each") and "mode" not in errors:
        errors["mode"] = "choose one job for all inputs or one job per input"
    if errors and need == "confirm" and not confirmed and mode != "each" and "confirm" not in errors:
        errors["confirm"] = "tick to confirm the number of jobs"
    summary = _error_summary(shown, errors, blocked)
    return {
        "here": _here(request),
        "summary": summary,
        "first_invalid": summary[0][0] if summary else None,
        "blocked": blocked,
        "submit_why": submit_why,
        "sel": resolved,
        "job_types": all_types,
        "compatible": compatible,
        "chosen": chosen,
        "why_not": why_not,
        "options": shown,
        "values": form_values,
        "errors": errors,
        "message": message,
        "notice": notice,
        "need": need,
        "mode": mode,
        "confirmed": confirmed,
        "tags": tags,
        "condition_problems": planning.condition_problems(chosen, resolved.selection)
        if chosen and ident.staff
        else [],
    }


def _error_summary(options, errors: dict, blocked: dict) -> list[tuple[str, str]]:
    """(field id, message) for every error at a field, in the form's order: the ids the
    panel gives the fields (run/_panel.jinja2: ``opt-N``, a radio group's first ``opt-N-1``)."""
    ids: dict[str, str] = {}
    for i, o in enumerate(options, 1):
        ids.setdefault(o.key, f"opt-{i}-1" if o.is_radio else f"opt-{i}")
    ids["confirm"] = "confirm"
    ids["mode"] = "mode-each" if blocked.get("single") else "mode-single"
    ids["tags"] = "tags"
    return [(fid, errors[key]) for key, fid in ids.items() if errors.get(key)]


def _here(request) -> str:
    """The page the panel is shown on, for its forms' ``back``: this page, or for an htmx
    fragment the page it was asked from (HX-Current-URL, kept under the prefix)."""
    if request.headers.get("HX-Request") == "true":
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        here = local_path(current.path + (f"?{current.query}" if current.query else ""), request.script_name)
        return here or request.route_path("datasets.search")
    if request.method == "GET":
        return request.path_qs
    return request.route_path("submit")


# --- dataset search ---------------------------------------------------------------------


def _cursor(request, list_scope: str, field: str = "cursor") -> catalog_pages.Where:
    """Where the ``cursor`` parameter leads; a 400 naming it if it is not one of this list's."""
    return catalog_pages.decode(request.cursors, list_scope, param_text(request.params, field, 2048), field)


def _search(request):
    type_name = param_text(request.params, "type")
    investigation = param_text(request.params, "investigation")
    name = param_text(request.params, "name", 1000)[:200]
    scope = catalog_pages.dataset_scope(request.identity.user_name, type_name, investigation, name)
    where = _cursor(request, scope)
    q = DatasetQuery(
        type_name=type_name,
        investigation=investigation,
        name=name,
        per_page=PER_PAGE,
        after=where.after,
        before=where.before,
        # the menus are the page's (a history restore asks for the whole page)
        facets=request.headers.get("HX-Request") != "true"
        or request.headers.get("HX-History-Restore-Request") == "true",
        count=where.count,
    )
    results = catalog_pages.counted(
        request.catalog.search_datasets(request.identity.catalog_session, q), where
    )
    return {
        "q": q,
        "results": results,
        "page_number": where.number,
        "counted_before": not where.count,
        "links": catalog_pages.links(request.cursors, scope, results, where),
    }


@view_config(
    route_name="datasets.search",
    request_method="GET",
    permission=Permission.USE,
    renderer="datasets/index.jinja2",
)
def datasets_page(request):
    vary(request)
    sel = _selection(request)
    return {**_search(request), "selected": set(sel["datasets"]), **panel(request)}


@view_config(
    route_name="datasets.search",
    request_method="GET",
    header=HTMX,
    permission=Permission.USE,
    renderer="datasets/_results.jinja2",
)
def datasets_results(request):
    vary(request)
    if request.headers.get("HX-History-Restore-Request") == "true":  # Back: the whole page
        request.override_renderer = "datasets/index.jinja2"
        return datasets_page(request)
    return {**_search(request), "selected": set(_selection(request)["datasets"])}


def _detail(request):
    ds_id = path_id(request, "dataset_id")
    name = param_text(request.params, "file", 1000)[:200]
    scope = catalog_pages.datafile_scope(request.identity.user_name, ds_id, name)
    where = _cursor(request, scope)
    files = DatafileQuery(
        name=name, per_page=FILES_PER_PAGE, after=where.after, before=where.before, count=where.count
    )
    d = dataset_detail(request.catalog, request.identity.catalog_session, request.datasettypes, ds_id, files)
    if d is None:
        raise HTTPNotFound()
    datafiles = catalog_pages.counted(d.datafiles, where)
    sel = _selection(request)
    return {
        "ds": d.dataset,
        "parameters": d.parameters,
        "job_parameters": d.job_parameters,
        "datafiles": datafiles,
        "file_name": name,
        "files_page": where.number,
        "files_counted_before": not where.count,
        "file_links": catalog_pages.links(request.cursors, scope, datafiles, where),
        "selected_files": set(sel["datafiles"]),
        "dataset_selected": ds_id in sel["datasets"],
        **_back(request),
    }


def _back(request) -> dict:
    """Where a dataset page's back link leads: its ``back`` parameter (the search it was
    opened from) kept to a path under the portal, else the search page."""
    search = request.route_path("datasets.search")
    back = local_path(request.GET.get("back", ""), request.script_name)
    return {"back": back or search, "back_is_search": (back or search).split("?")[0] == search}


@view_config(
    route_name="datasets.detail",
    request_method="GET",
    permission=Permission.USE,
    renderer="datasets/detail.jinja2",
)
def dataset_page(request):
    """A dataset's own page, with the run panel beside it (datafiles ticked there show in
    the selection at once)."""
    vary(request)
    found = {**panel(request), **_detail(request)}
    # the page offers an upload where the user may write (views/data.py; IDS's put decides)
    found["may_upload"] = request.data.may_write(request.identity.catalog_session, found["ds"].id)
    return found


@view_config(
    route_name="datasets.detail",
    request_method="GET",
    header=HTMX,
    permission=Permission.USE,
    renderer="datasets/_detail.jinja2",
)
def dataset_fragment(request):
    vary(request)
    return _detail(request)


# --- selection --------------------------------------------------------------------------


MAX_SHOWN = 200  # ids one "update" may name: more than a page of datasets or datafiles


def _id_list(request, field: str) -> list[int]:
    """Every ``field`` value of the form as an id (repeated fields); 400 naming it if one is
    not, or if there are more than :data:`MAX_SHOWN`."""
    raw = request.POST.getall(field)
    if len(raw) > MAX_SHOWN:
        raise inputs.InputError(field, f"names {len(raw)} ids; at most {MAX_SHOWN} at once")
    return [inputs.ident(i, field) for i in raw]


def _update_selection(request) -> str | None:
    """Change the selection as the form says. The actions:

    - ``update`` (the no-JS contract, used by the search results and a dataset's datafile
      table alike): ``kind=dataset|datafile``, ``shown=<id>`` for every id the page
      listed, ``checked=<id>`` for the ticked ones: each shown id is selected iff ticked;
      nothing else changes. A ``checked`` id that was not ``shown`` is ignored.
    - ``set`` (one checkbox, htmx): ``id`` selected iff ``checked`` came;
    - ``add`` / ``remove``: the ``id`` values; ``clear``: everything.

    Ids are not looked up here, as with ``add``: one the catalog does not show the user
    is listed as "not found or not visible" in the panel, by number only, and a
    submission with it is refused."""
    sel = _selection(request)
    action = request.POST.get("action", "")
    kind = request.POST.get("kind", "dataset")
    if action == "update" and kind not in ("dataset", "datafile"):
        raise inputs.InputError("kind", "must be dataset or datafile")
    key = "datafiles" if kind == "datafile" else "datasets"
    ids = [inputs.ident(i, "id") for i in request.POST.getall("id")]
    if action == "update":
        shown = _id_list(request, "shown")
        checked = set(_id_list(request, "checked"))
        shown_set = set(shown)
        kept = [i for i in sel[key] if i not in shown_set]
        sel[key] = kept + [i for i in dict.fromkeys(shown) if i in checked]
    elif action == "clear":
        sel["datasets"], sel["datafiles"] = [], []
    elif action == "set":  # one checkbox: selected iff it came ticked
        for i in ids:
            if "checked" in request.POST and i not in sel[key]:
                sel[key].append(i)
            elif "checked" not in request.POST and i in sel[key]:
                sel[key].remove(i)
    elif action == "add":
        sel[key] += [i for i in ids if i not in sel[key]]
    elif action == "remove":
        sel[key] = [i for i in sel[key] if i not in ids]
    if "job_type" in request.POST:
        sel["job_type"] = param_text(request.POST, "job_type")
    if len(sel["datasets"]) + len(sel["datafiles"]) > MAX_SELECTION:
        return f"at most {MAX_SELECTION} datasets and datafiles can be selected at once"
    _save_selection(request, sel)
    return None


@view_config(route_name="selection", request_method="POST", permission=Permission.USE)
def selection_post(request):
    _update_selection(request)
    back = local_path(request.POST.get("back", ""), request.script_name)
    return HTTPSeeOther(location=back or request.route_url("submit"))


@view_config(
    route_name="selection",
    request_method="POST",
    header=HTMX,
    permission=Permission.USE,
    renderer="run/_panel.jinja2",
)
def selection_fragment(request):
    vary(request)
    message = _update_selection(request)
    if request.POST.get("action") in ("clear", "remove"):
        # the search results show ticks: refresh them (not after a tick in the list
        # itself, which would take the keyboard focus away from that checkbox)
        request.response.headers["HX-Trigger"] = "selectionChanged"
    # keep what the user has typed into the form so far
    sel = _selection(request)
    chosen = request.jobtypes.get(sel["job_type"])
    values = _submitted_values(request, chosen.options) if chosen else None
    return panel(request, values=values, message=message, tags=request.POST.get("tags", ""))


@view_config(route_name="jobs.resubmit", request_method="POST", permission=Permission.USE)
def resubmit(request):
    """Make this job's inputs and job type the selection, then show the prefilled form."""
    job = request.context.job
    _save_selection(
        request,
        {"datasets": list(job.dataset_ids), "datafiles": list(job.datafile_ids), "job_type": job.job_type},
    )
    return HTTPSeeOther(location=request.route_url("submit", _query={"like": job.id}))


# --- the run panel and submission ------------------------------------------------------------


@view_config(route_name="submit", request_method="GET", permission=Permission.USE, renderer="run/page.jinja2")
def submit_page(request):
    vary(request)
    message = None
    if "like" in request.GET:
        return _like(request, inputs.job_id(request.GET["like"], "like"))
    if "jobtype" in request.GET:
        name = param_text(request.GET, "jobtype")
        sel = _selection(request)
        sel["job_type"] = name
        _save_selection(request, sel)
        if name and request.jobtypes.get(name) is None:
            message = f"there is no job type called {name!r}; choose one below"
    return panel(request, message=message)


def _like(request, job_id: int):
    """The form prefilled from one of your jobs (its inputs are the selection already:
    the Resubmit button on the job's page set them)."""
    job = owned_job(request.dbsession, request.identity.user_name, job_id)
    if job is None:
        request.response.status = 404
        return panel(request, message=f"there is no job {job_id} of yours to resubmit")
    like, sel = resubmission(job), _selection(request)
    if (sel["datasets"], sel["datafiles"], sel["job_type"]) != (
        like.dataset_ids,
        like.datafile_ids,
        like.job_type,
    ):
        return panel(request, message=f"the selection is no longer job {job.id}'s; use Resubmit on its page")
    return panel(
        request,
        values=like.values,
        mode=like.mode,
        tags=" ".join(like.tags),
        notice=f"Resubmitting job {job.id}: its inputs and option values are filled in; "
        "change what you need and submit.",
    )


@view_config(
    route_name="submit",
    request_method="GET",
    header=HTMX,
    permission=Permission.USE,
    renderer="run/_panel.jinja2",
)
def submit_fragment(request):
    return submit_page(request)


@view_config(
    route_name="submit", request_method="POST", permission=Permission.USE, renderer="run/page.jinja2"
)
def submit(request):
    vary(request)
    sel = _selection(request)
    name = request.POST.get("jobtype") or sel["job_type"]
    jt = request.jobtypes.get(name)
    if jt is not None and sel["job_type"] != jt.name:
        sel["job_type"] = jt.name
        _save_selection(request, sel)
    values = _submitted_values(request, jt.options) if jt is not None else {}
    mode = request.POST.get("mode") or None
    tags = request.POST.get("tags", "")
    req = SubmitRequest(
        name, sel["datasets"], sel["datafiles"], values, mode, request.POST.get("confirm") == "yes",
        split_tags(tags), geometry=param_text(request.POST, "geometry", 16) or None,
    )  # fmt: skip
    try:
        sub = submit_jobs(request, req)
    except SubmitError as e:
        fields = dict(e.fields)
        if e.code in FIELD_OF and not wants_json(request):  # said at the job-count choice
            fields.setdefault(FIELD_OF[e.code], str(e))
        message = str(e) if wants_json(request) or str(e) not in fields.values() else None
        return _refused(
            request, message, e.code, e.status, values=values, errors=fields, mode=mode, tags=tags
        )
    where = request.route_url("jobs.list", _query={"submission": sub.id})
    if wants_json(request):
        request.override_renderer = "json"
        request.response.status = 201
        return {"submission": sub.id, "jobs": [j.id for j in sub.jobs]}
    if request.headers.get("HX-Request") == "true":
        request.response.headers["HX-Redirect"] = where
        request.response.status = 204
        return request.response
    return HTTPSeeOther(location=where)


def _refused(request, message, code, status=400, *, values=None, errors=None, mode=None, tags=""):
    """Nothing is submitted: say why, keep every value the user gave."""
    request.response.status = status
    if wants_json(request):
        request.override_renderer = "json"
        body = {"code": code, "message": message}
        if errors:
            body["fields"] = errors
        return body
    if request.headers.get("HX-Request") == "true":
        # htmx swaps this 400 too (responseHandling in layout.jinja2)
        request.override_renderer = "run/_panel.jinja2"
    return panel(
        request,
        values=values,
        errors=errors,
        message=message,
        mode=mode,
        confirmed=request.POST.get("confirm") == "yes",
        tags=tags,
    )

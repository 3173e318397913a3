"""Comments on a job: on its page (a fragment with htmx, full pages and redirects
without JavaScript) and in /api/v1. Thin: ijpweb.jobs.comments does the work.

Every route's factory is the job's (security.job_factory): another user's job, or none,
is not found before these views run; a comment id is looked up among that job's own
comments only, so a made-up id (another job's comment) is not found either. Staff get no
other rights here: a user's comments are theirs (the console shows none).
"""

from __future__ import annotations

from pyramid.events import BeforeRender, subscriber
from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config

from ..inputs import InputError
from ..jobs.comments import (
    CommentLimit,
    CommentNotFound,
    add_comment,
    delete_comment,
    edit_comment,
    get_comment,
    list_comments,
)
from ..models import as_utc
from ..models.comments import MAX_COMMENT_LENGTH
from ..security import Permission
from . import HTMX, vary
from .api import ApiError, _json

FRAGMENT = "jobs/_comments.jinja2"
PAGE = "jobs/comments.jinja2"


@subscriber(BeforeRender)
def comments_on_job_page(event) -> None:
    """The job page (jobs/detail.jinja2, whoever renders it) shows the job's comments:
    they are read here, so its view need not know about them."""
    if event.get("renderer_name") != "jobs/detail.jinja2":
        return
    value = event.rendering_val if isinstance(event.rendering_val, dict) else {}
    job, request = value.get("job"), event.get("request")
    if job is None or request is None or "comments" in value:
        return
    event["comments"] = list_comments(request.dbsession, job)
    event.setdefault("comment_limit", MAX_COMMENT_LENGTH)


def _values(request, **extra) -> dict:
    job = request.context.job
    return {
        "job": job,
        "comments": list_comments(request.dbsession, job),
        "comment_limit": MAX_COMMENT_LENGTH,
        **extra,
    }


def _done(request, anchor: str = "comments"):
    """After a change: the fragment for htmx, else back to the job page (303)."""
    if request.headers.get("HX-Request") == "true":
        return _values(request)
    return HTTPSeeOther(
        location=request.route_url("jobs.detail", job_id=request.context.job.id, _anchor=anchor)
    )


def _refused(request, status: int, **extra):
    """A change refused: the form again with the message at its field and the text kept
    (the fragment for htmx, a page of its own without JavaScript); nothing changed."""
    request.tm.doom()
    request.response.status = status
    if request.headers.get("HX-Request") != "true":
        request.override_renderer = PAGE
    return _values(request, **extra)


def _comment(request):
    try:
        return get_comment(request.dbsession, request.context.job, request.matchdict["comment_id"])
    except CommentNotFound:
        raise HTTPNotFound() from None


@view_config(route_name="jobs.comments", request_method="GET", permission=Permission.USE, renderer=PAGE)
@view_config(
    route_name="jobs.comments",
    request_method="GET",
    header=HTMX,
    permission=Permission.USE,
    renderer=FRAGMENT,
)
def comments(request):
    vary(request)
    return _values(request)


@view_config(route_name="jobs.comments", request_method="POST", permission=Permission.USE, renderer=FRAGMENT)
def add(request):
    text = request.POST.get("text", "")
    try:
        comment = add_comment(request.dbsession, request.context.job, request.identity.user_name, text)
    except InputError as e:
        return _refused(request, 422, new_text=text, new_error=f"The comment {e.reason}.")
    except CommentLimit as e:
        return _refused(request, 409, new_text=text, new_error=str(e))
    return _done(request, f"comment-{comment.id}")


@view_config(route_name="jobs.comment", request_method="POST", permission=Permission.USE, renderer=FRAGMENT)
def edit(request):
    comment, text = _comment(request), request.POST.get("text", "")
    try:
        edit_comment(request.dbsession, request.context.job, comment.id, text)
    except InputError as e:
        return _refused(
            request, 422, edit_id=comment.id, edit_text=text, edit_error=f"The comment {e.reason}."
        )
    return _done(request, f"comment-{comment.id}")


@view_config(
    route_name="jobs.comment.delete", request_method="POST", permission=Permission.USE, renderer=FRAGMENT
)
def delete(request):
    comment = _comment(request)
    delete_comment(request.dbsession, request.context.job, comment.id)
    return _done(request)


# --- /api/v1 ---------------------------------------------------------------------------


def comment_json(request, comment) -> dict:
    return {
        "id": comment.id,
        "job": comment.job_id,
        "author": comment.author,
        "text": comment.body,
        "created_at": _iso(comment.created_at),
        "edited_at": _iso(comment.edited_at),
        "edited": comment.edited_at is not None,
        "url": request.route_url("api.job.comment", job_id=comment.job_id, comment_id=comment.id),
    }


def _iso(value) -> str | None:
    return as_utc(value).isoformat() if value else None


def _text(request) -> str:
    body = _json(request)
    if "text" not in body:
        raise ApiError(400, "bad_request", "text is required", {"text": "required"})
    return body["text"]


def _api_comment(request):
    try:
        return get_comment(request.dbsession, request.context.job, request.matchdict["comment_id"])
    except CommentNotFound:
        raise HTTPNotFound() from None


def _invalid(e: InputError):
    return ApiError(422, "invalid_comment", e.message, {e.field: e.message})


@view_config(route_name="api.job.comments", request_method="GET", permission=Permission.USE, renderer="json")
def api_list(request):
    job = request.context.job
    return {"comments": [comment_json(request, c) for c in list_comments(request.dbsession, job)]}


@view_config(route_name="api.job.comments", request_method="POST", permission=Permission.USE, renderer="json")
def api_add(request):
    try:
        comment = add_comment(
            request.dbsession, request.context.job, request.identity.user_name, _text(request)
        )
    except InputError as e:
        raise _invalid(e) from None
    except CommentLimit as e:
        raise ApiError(409, "too_many_comments", str(e)) from None
    request.response.status = 201
    request.response.headers["Location"] = comment_json(request, comment)["url"]
    return comment_json(request, comment)


@view_config(route_name="api.job.comment", request_method="PATCH", permission=Permission.USE, renderer="json")
def api_edit(request):
    comment = _api_comment(request)
    try:
        comment = edit_comment(request.dbsession, request.context.job, comment.id, _text(request))
    except InputError as e:
        raise _invalid(e) from None
    return comment_json(request, comment)


@view_config(route_name="api.job.comment", request_method="DELETE", permission=Permission.USE)
def api_delete(request):
    comment = _api_comment(request)
    delete_comment(request.dbsession, request.context.job, comment.id)
    return Response(status=204)

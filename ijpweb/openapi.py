"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json. Tests validate
real responses against it (tests/functional/test_api.py) and schemathesis runs it."""

from __future__ import annotations

from .inputs import MAX_ID, MAX_IDS, MAX_JOB_ID, MAX_OFFSET
from .models.comments import MAX_COMMENT_LENGTH
from .states import JobStatus

STATUSES = [s.value for s in JobStatus]


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    return {str(c): _json(_ref("Error"), "the request was refused; nothing changed") for c in codes}


NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
JOB = {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID}  # a job's or a submission's id
IDS = {"type": "array", "maxItems": MAX_IDS, "items": ID}
# text is valid Unicode without NUL (it cannot be stored, nor be an argument of a program)
NO_NUL = "^[^\\u0000]*$"
TEXT = {"type": "string", "pattern": NO_NUL}
# an object whose keys are not fixed (option values by name): any JSON whose strings
# (and keys) are text, as every string the API reads is checked
BODY = {"additionalProperties": {"$ref": "#/components/schemas/Json"}, "propertyNames": {"pattern": NO_NUL}}
# a request body holds the fields named and no other: an unknown one is refused (400,
# unknown_field, naming it). This is the declaration the views check (ijpweb/declared.py).
STRICT = {"additionalProperties": False}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": JOB}
PAGE = {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000}}
PER_PAGE = {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}


def _text_param(name: str, description: str = "", max_length: int = 200) -> dict:
    param = {"name": name, "in": "query", "schema": {**TEXT, "maxLength": max_length}}
    return param | ({"description": description} if description else {})


def _ids_param(name: str) -> dict:
    return {
        "name": name,
        "in": "query",
        "schema": {"type": "string", "pattern": "^([1-9][0-9]{0,17})?(,[1-9][0-9]{0,17})*$"},
        "description": f"ids (1 to {MAX_ID}) separated by commas, at most {MAX_IDS}",
    }


def _object(properties: dict, *, optional: tuple[str, ...] = (), **extra) -> dict:
    """An object schema whose properties are all required except ``optional``."""
    required = [k for k in properties if k not in optional]
    return {"type": "object", **extra, "required": required, "properties": properties}


BEARER = [{"bearer": []}, {"cookie": []}]

CATALOG_PAGE = {  # a page of a catalog list (datasets, a dataset's datafiles): keyset cursors
    "total": {"type": "integer", "description": "how many the list holds, counted up to 10,000 (see total_exact) "
              "by its first page; the pages after it carry that count"},
    "total_exact": {"type": "boolean", "description": "false: there are more than total"},
    "page": {"type": "integer", "description": "the page's number (1: the first), for showing"},
    "per_page": {"type": "integer", "description": "the page size used (at most 200)"},
    "per_page_capped": {"type": "boolean", "description": "true: per_page asked for more than 200, and 200 "
                        "were given (the X-Per-Page-Capped header says so too)"},
    "next": {"type": ["string", "null"], "description": "cursor= of the next page; null: this is the last"},
    "next_url": {"type": ["string", "null"]},
    "previous": {"type": ["string", "null"], "description": "cursor= of the page before; null: this is the first"},
    "previous_url": {"type": ["string", "null"]},
}  # fmt: skip
LIST_CURSOR = {
    "name": "cursor",
    "in": "query",
    "schema": {"type": "string", "maxLength": 2048, "pattern": NO_NUL},
    "description": "the next or previous of a page of this very list (same filters, same user): another "
    "list's, or a changed one, is refused with 400",
}
CAPPED_PER_PAGE = {
    "name": "per_page",
    "in": "query",
    "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    "description": "how many per page; more than 200 gives 200, and per_page_capped says so",
}

KEYSET_PAGE = {  # a page of a list paged by id (a user's jobs, the console's jobs and audit)
    "total": {
        "type": "integer",
        "description": "how many the list holds (jobs, entries), counted up to 10,000 (see total_exact)",
    },
    "total_exact": {
        "type": "boolean",
        "description": "false: there are more than total (counting stops at 10,000)",
    },
    "per_page": {"type": "integer", "description": "the page size used (at most 200)"},
    "per_page_capped": {
        "type": "boolean",
        "description": "true: per_page asked for more than 200, and 200 were given "
        "(the X-Per-Page-Capped header says so too)",
    },
    "next": {
        "type": ["string", "null"],
        "description": "cursor= of the next (older) page; null: this is the last",
    },
    "next_url": {"type": ["string", "null"], "description": "the next page's URL (same filters)"},
    "previous": {
        "type": ["string", "null"],
        "description": "cursor= of the previous (newer) page; null: this is the first",
    },
    "previous_url": {"type": ["string", "null"], "description": "the previous page's URL"},
}

SCHEMAS = {
    "Error": _object(
        {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        optional=("fields",),
    ),
    # (not "Login": that is a live login, in the operator's console's listing below)
    "Credentials": _object(
        {
            "authenticator": {**TEXT, "default": "db"},
            "username": TEXT,
            "password": TEXT,
        },
        optional=("authenticator",),
        **STRICT,
    ),
    "Json": {
        "description": "any JSON value without NUL characters in its strings",
        "type": ["object", "array", "string", "number", "boolean", "null"],
        "pattern": NO_NUL,
        "items": {"$ref": "#/components/schemas/Json"},
        **BODY,
    },
    "Token": _object(
        {
            "token": {"type": "string"},
            "user": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"},
        }
    ),
    "Session": _object(
        {
            "user": {"type": "string"},
            "staff": {"type": "boolean"},
            "expires_at": {"type": "string", "format": "date-time"},
        }
    ),
    "JobType": _object(
        {
            "name": {"type": "string"},
            "executable": {"type": "string"},
            "multiple": {"type": "boolean"},
            "forceSingleJob": {"type": "boolean"},
            "type": {"enum": ["batch", "interactive"]},
            "family": {"type": "string"},
            "acceptsDatasets": {"type": "boolean"},
            "acceptsDatafiles": {"type": "boolean"},
            "sessionIdRequired": {"type": "boolean"},
            "icatUrlRequired": {"type": "boolean"},
            "idsUrlRequired": {"type": "boolean"},
            "datasetTypes": {"type": "array", "items": {"type": "string"}},
            "jobOptions": {"type": "array", "items": _ref("JobOption")},
            "description": {"type": "string", "description": "what it does, plain text; empty if none"},
            "inputs": {
                "oneOf": [{"type": "null"}, _ref("InputsRule")],
                "description": "how many datasets and datafiles one job takes; null: no rule",
            },
            "interactive": {
                "type": "boolean",
                "description": "true: its jobs run a program on a remote desktop, opened in the browser",
            },
        },
        optional=("family",),
        description="The original IJP's job type JSON (ijp-formats.md §1.6) with ijpweb's "
        "description and inputs rule",
    ),
    "InputsRule": _object(
        {
            k: {"type": ["integer", "null"], "minimum": 0, "maximum": 1_000_000}
            for k in ("minDatasets", "maxDatasets", "minDatafiles", "maxDatafiles")
        },
        description="The <inputs> rule, per job: a submission that breaks it is refused "
        "(400, wrong_inputs); null: no bound",
    ),
    "JobOption": _object(
        {
            "name": {"type": "string"},
            "groupName": {"type": "string"},
            "type": {"enum": ["boolean", "string", "integer", "float", "enumeration"]},
            "programParameter": {"type": "string"},
            "values": {"type": "array", "items": {"type": "string"}},
            "defaultValue": {"type": "string"},
            "minValue": {"type": "string"},
            "maxValue": {"type": "string"},
            "condition": {"type": "string"},
            "tip": {"type": "string"},
        },
        optional=("groupName", "defaultValue", "minValue", "maxValue", "condition", "tip"),
    ),
    "SubmissionRequest": _object(
        {
            "job_type": {**TEXT, "minLength": 1},
            "datasets": IDS,
            "datafiles": IDS,
            "options": {
                "type": "object",
                "description": "values by option name (group name for radio options); a name "
                "that the job type has no option for is refused (400, unknown_field)",
                **BODY,
            },
            "mode": {
                "enum": ["single", "each", None],
                "description": "one job for all inputs, or one per input",
            },
            "confirm": {
                "type": "boolean",
                "description": "confirms one job per input for a single-input type",
            },
            "tags": _ref("Tags"),
            "geometry": {
                "type": "string",
                "maxLength": 11,
                "pattern": "^[0-9]{1,5}x[0-9]{1,5}$",
                "description": "an interactive job's desktop size in pixels, WIDTHxHEIGHT (1280x800 when not "
                "given); kept within 640x480 .. 3840x2160",
            },
            "like": {
                **JOB,
                "description": "resubmit: start from what submitted this job of yours (job type, "
                "inputs, option values, mode, tags); fields given here change it, and an option "
                "given as null is dropped",
            },
        },
        optional=(
            "job_type",
            "datasets",
            "datafiles",
            "options",
            "mode",
            "confirm",
            "tags",
            "geometry",
            "like",
        ),
        **STRICT,
        anyOf=[{"required": ["job_type"]}, {"required": ["like"]}],
        description="job_type is required, unless like names the job to start from",
    ),
    "Tags": {
        "type": "array",
        "maxItems": 20,
        "items": {**TEXT, "maxLength": 64},
        "description": "labels of your own, to find jobs by: letters, digits and . _ - : @ + / "
        "(blanks around a tag, and blank tags, are ignored)",
    },
    "Dataset": _object(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "type": {"type": "string"},
            "investigation": {"type": "string"},
            "investigation_title": {"type": "string"},
            "description": {"type": "string"},
            "complete": {"type": "boolean"},
            "datafile_count": {"type": "integer", "description": "the datafiles you may read"},
            "datafile_size": {"type": "integer", "description": "their sizes' sum, in bytes"},
            "create_time": NULLABLE_TIME,
        }
    ),  # fmt: skip
    "DatasetDetail": {
        "allOf": [
            _ref("Dataset"),
            _object(
                {
                    "parameters": {
                        "type": "array",
                        "items": _object(
                            {"name": {"type": "string"}, "value": {}, "units": {"type": "string"}}
                        ),
                    },
                    "job_parameters": {
                        "type": "object",
                        "description": "the dataset type's parameters, which option conditions use",
                    },
                    "datafiles": {
                        "type": "array",
                        "items": _ref("Datafile"),
                        "description": "the first page of its datafiles (by name; per_page, file)",
                    },
                    "datafiles_total": {"type": "integer", "description": "counted up to 10,000"},
                    "datafiles_total_exact": {"type": "boolean"},
                    "datafiles_next": {
                        "type": ["string", "null"],
                        "description": "cursor= of the next page at /api/v1/datasets/{dataset_id}/datafiles",
                    },
                    "datafiles_next_url": NULLABLE_STR,
                }
            ),
        ]
    },
    "Datafile": _object(
        {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "size": {"type": "integer"},
            "format": {"type": "string"},
        }
    ),
    "DatasetList": _object(
        {
            "datasets": {"type": "array", "items": _ref("Dataset")},
            **CATALOG_PAGE,
            "facets": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        }
    ),  # fmt: skip
    "DatafileList": _object({"datafiles": {"type": "array", "items": _ref("Datafile")}, **CATALOG_PAGE}),
    "SelectionOptions": _object(
        {
            "job_type": {"type": "string"},
            "fits": {"type": "boolean"},
            "why_not": NULLABLE_STR,
            "choice": {
                "enum": ["mode", "confirm", None],
                "description": "mode: choose one job or one per input; confirm: one job per input must be confirmed",
            },
            "options": {"type": "array", "items": _ref("JobOption")},
            "defaults": {"type": "object"},
            "parameters": {
                "type": "object",
                "description": "each selected dataset's type parameters, by dataset id",
                "additionalProperties": {"type": "object"},
            },
        }
    ),
    "Submission": _object(
        {"submission": {"type": "integer"}, "jobs": {"type": "array", "items": _ref("Job")}}
    ),
    "Job": _object(
        {
            "id": {"type": "integer"},
            "submission": {"type": "integer"},
            "job_type": {"type": "string"},
            "status": {"enum": STATUSES},
            "live": {"type": "boolean"},
            "dataset_ids": {"type": "array", "items": {"type": "integer"}},
            "datafile_ids": {"type": "array", "items": {"type": "integer"}},
            "options": {"type": "object"},
            "command": {
                "type": "array",
                "items": {"type": "string"},
                "description": "argv; the session as a stand-in",
            },
            "exit_code": {"type": ["integer", "null"]},
            "reason": NULLABLE_STR,
            "backend": {"type": "string"},
            "backend_job_id": NULLABLE_STR,
            "submitted_at": {"type": "string", "format": "date-time"},
            "started_at": NULLABLE_TIME,
            "finished_at": NULLABLE_TIME,
            "queue_seconds": {"type": ["number", "null"]},
            "wall_seconds": {"type": ["number", "null"]},
            "provenance_id": {"type": ["integer", "null"]},
            "nodes": {"type": ["integer", "null"], "description": "nodes it ran on, once the backend says"},
            "cores": {
                "type": ["integer", "null"],
                "description": "cores allocated to it, once the backend says",
            },
            "hosts": {**NULLABLE_STR, "description": "the hosts it ran on (SLURM's node list)"},
            "tags": _ref("Tags"),
            "inputs": _ref("JobInputs"),
            "interactive": {
                "oneOf": [{"type": "null"}, _ref("Desktop")],
                "description": "an interactive job's desktop (to its owner); null for a batch job",
            },
        },
        optional=("interactive",),
    ),
    "Desktop": _object(
        {
            "state": {
                "enum": ["starting", "ready", "ended"],
                "description": "starting: queued, or its display not answering yet; ready: it can be "
                "opened; ended: the session is over",
            },
            "url": {
                "type": "string",
                "description": "the page that shows the desktop, in a browser where you are logged in",
            },
        }
    ),
    "JobList": _object({"jobs": {"type": "array", "items": _ref("Job")}, **KEYSET_PAGE}),
    "Output": _object(
        {
            "text": {"type": "string"},
            "offset": {"type": "integer"},
            "next_offset": {"type": "integer"},
            "complete": {"type": "boolean", "description": "the job has ended and this is the end"},
        }
    ),
}


# what a client can do next with the first job of a submission
JOB_LINKS = {
    name: {"operationId": op, "parameters": {"job_id": "$response.body#/jobs/0/id"}}
    for name, op in (
        ("GetJob", "getJob"),
        ("GetJobOutput", "getJobOutput"),
        ("SetJobTags", "setJobTags"),
        ("CancelJob", "cancelJob"),
        ("DeleteJob", "deleteJob"),
    )
}
# every operation's id (clients name operations by them; tests exclude one by its id)
OPERATION_IDS = {
    ("/api/v1/session", "post"): "login",
    ("/api/v1/session", "get"): "getSession",
    ("/api/v1/session", "delete"): "revokeToken",
    ("/api/v1/jobtypes", "get"): "listJobTypes",
    ("/api/v1/jobtypes/{name}", "get"): "getJobType",
    ("/api/v1/jobtypes/{name}/options", "get"): "getJobTypeOptions",
    ("/api/v1/datasets", "get"): "searchDatasets",
    ("/api/v1/datasets/{dataset_id}", "get"): "getDataset",
    ("/api/v1/datasets/{dataset_id}/datafiles", "get"): "listDatasetDatafiles",
    ("/api/v1/jobs/{job_id}/tags", "put"): "setJobTags",
    ("/api/v1/submissions", "post"): "submit",
    ("/api/v1/jobs", "get"): "listJobs",
    ("/api/v1/jobs/{job_id}", "get"): "getJob",
    ("/api/v1/jobs/{job_id}", "delete"): "deleteJob",
    ("/api/v1/jobs/{job_id}/cancel", "post"): "cancelJob",
    ("/api/v1/jobs/{job_id}/end", "post"): "endJob",
    ("/api/v1/jobs/{job_id}/output/{stream}", "get"): "getJobOutput",
}


# --- the operator's console: /api/v1/admin, for staff (views/admin.py, ijpweb/console.py) ---

STAFF_ONLY = "For staff (ijp.staff) only: anyone else gets 403. "
WHEN = {"type": "string", "maxLength": 64, "pattern": NO_NUL}
ADMIN_PAGE = [LIST_CURSOR, {**CAPPED_PER_PAGE, "description": "how many per page (50); more than 200 gives 200, "
                            "and per_page_capped says so"}]  # fmt: skip
SCHEMAS.update(
    {
        "AdminJob": {"allOf": [_ref("Job"), _object({"owner": {"type": "string"}})]},
        "AdminJobPage": _object({"jobs": {"type": "array", "items": _ref("AdminJob")}, **KEYSET_PAGE}),
        "Login": _object(
            {
                "handle": {"type": "string", "description": "a short non-secret name of the login or token"},
                "user": {"type": "string"},
                "kind": {"enum": ["web", "api"], "description": "a web login or an API token"},
                "created_at": {"type": "string", "format": "date-time"},
                "expires_at": {"type": "string", "format": "date-time"},
            }
        ),
        "LoginList": _object(
            {
                "logins": {"type": "array", "items": _ref("Login")},
                "total": {"type": "integer"},
                "page": {"type": "integer"},
                "per_page": {"type": "integer"},
            }
        ),
        "RevokeRequest": _object(
            {
                "user": {**TEXT, "minLength": 1, "maxLength": 255},
                "handle": {
                    **TEXT,
                    "maxLength": 64,
                    "description": "one login or token; without it, all of the user's",
                },
            },
            optional=("handle",),
            additionalProperties=False,
        ),
        "Revoked": _object(
            {
                "revoked": {"type": "integer", "description": "logins and tokens revoked"},
                "waiting": {
                    "type": "integer",
                    "description": "of their catalog sessions, those kept until the live jobs using them end",
                },
            }
        ),
        "FileProblems": _object(
            {
                "job_types": {
                    "type": "array",
                    "items": _object({"name": {"type": "string"}, "file": {"type": "string"}}),
                },
                "problems": {
                    "type": "array",
                    "items": _object(
                        {
                            "kind": {"enum": ["job type", "dataset type"]},
                            "file": {"type": "string"},
                            "line": {"type": ["integer", "null"]},
                            "reason": {"type": "string"},
                        }
                    ),
                },
            }
        ),
        "AuditEntry": _object(
            {
                "id": {"type": "integer"},
                "at": {"type": "string", "format": "date-time"},
                "actor": {"type": "string", "description": "the staff member"},
                "action": {
                    "type": "string",
                    "description": "job.cancel, job.delete, login.revoke, login.revoke_all",
                },
                "target": {"type": "string"},
                "detail": {"type": "string"},
            }
        ),
        "AuditPage": _object({"entries": {"type": "array", "items": _ref("AuditEntry")}, **KEYSET_PAGE}),
    }
)
OPERATION_IDS.update(
    {
        ("/api/v1/admin/jobs", "get"): "adminListJobs",
        ("/api/v1/admin/jobs/{job_id}", "get"): "adminGetJob",
        ("/api/v1/admin/jobs/{job_id}/cancel", "post"): "adminCancelJob",
        ("/api/v1/admin/jobs/{job_id}/delete", "post"): "adminDeleteJob",
        ("/api/v1/admin/logins", "get"): "adminListLogins",
        ("/api/v1/admin/logins/revoke", "post"): "adminRevokeLogins",
        ("/api/v1/admin/jobtypes", "get"): "adminJobTypeProblems",
        ("/api/v1/admin/audit", "get"): "adminAudit",
    }
)


def _admin_paths() -> dict:
    return {
        "/api/v1/admin/jobs": {
            "get": {
                "summary": "Every user's jobs, newest first, filtered",
                "description": STAFF_ONLY + "A keyset, as /api/v1/jobs: each page has next (older) and "
                "previous (newer) cursors to pass as cursor=, with the same filters (another list's, or a "
                "changed one, is a 400 naming cursor); next_url and previous_url are those pages' URLs. "
                "With since or until the order is by submission time (then id).",
                "parameters": [
                    _text_param("user", "the owner, e.g. db/bob", 255),
                    {"name": "status", "in": "query", "schema": {"enum": [*STATUSES, "live"]}},
                    _text_param("jobtype", "a job type's name", 255),
                    _text_param("backend", "a backend's name", 64),
                    {
                        "name": "since",
                        "in": "query",
                        "schema": WHEN,
                        "description": "submitted at or after: an ISO 8601 time (UTC unless it says) or date",
                    },
                    {
                        "name": "until",
                        "in": "query",
                        "schema": WHEN,
                        "description": "submitted before this time; a date includes that whole day",
                    },
                    *ADMIN_PAGE,
                ],  # fmt: skip
                "responses": {"200": _json(_ref("AdminJobPage"), "a page of jobs"), **_errors(400, 401, 403)},
            }
        },
        "/api/v1/admin/jobs/{job_id}": {
            "get": {
                "summary": "Any user's job",
                "description": STAFF_ONLY,
                "parameters": [JOB_ID],
                "responses": {"200": _json(_ref("AdminJob"), "the job"), **_errors(401, 403, 404)},
            }
        },
        "/api/v1/admin/jobs/{job_id}/cancel": {
            "post": {
                "summary": "Cancel any user's live job (audited)",
                "description": STAFF_ONLY + "With the login cookie, send the X-CSRF-Token header.",
                "parameters": [JOB_ID],
                "responses": {
                    "200": _json(_ref("AdminJob"), "the job after the cancel"),
                    **_errors(401, 403, 404, 409),
                },
            }
        },
        "/api/v1/admin/jobs/{job_id}/delete": {
            "post": {
                "summary": "Delete any user's ended job and its files (audited)",
                "description": STAFF_ONLY + "With the login cookie, send the X-CSRF-Token header.",
                "parameters": [JOB_ID],
                "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404, 409)},
            }
        },
        "/api/v1/admin/logins": {
            "get": {
                "summary": "Live logins and API tokens, by user",
                "description": STAFF_ONLY + "Never a token or a session id: a handle names each.",
                "parameters": [
                    _text_param("user", "e.g. db/bob", 255),
                    {"name": "kind", "in": "query", "schema": {"enum": ["web", "api"]}},
                    PAGE,
                    PER_PAGE,
                ],
                "responses": {"200": _json(_ref("LoginList"), "a page of logins"), **_errors(400, 401, 403)},
            }
        },
        "/api/v1/admin/logins/revoke": {
            "post": {
                "summary": "Revoke one login or API token of a user, or all of them (audited)",
                "description": STAFF_ONLY + "They end at once; their catalog sessions are logged out when "
                "no live job uses them any more.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("RevokeRequest")}},
                },
                "responses": {"200": _json(_ref("Revoked"), "revoked"), **_errors(400, 401, 403, 404, 409)},
            }
        },
        "/api/v1/admin/jobtypes": {
            "get": {
                "summary": "The job types loaded, and the problems of the job type and dataset type files",
                "description": STAFF_ONLY,
                "responses": {
                    "200": _json(_ref("FileProblems"), "job types and problems"),
                    **_errors(401, 403),
                },
            }
        },
        "/api/v1/admin/audit": {
            "get": {
                "summary": "What staff did, newest first",
                "description": STAFF_ONLY + "A keyset, as adminListJobs: follow next and previous.",
                "parameters": ADMIN_PAGE,
                "responses": {
                    "200": _json(_ref("AuditPage"), "a page of the audit"),
                    **_errors(400, 401, 403),
                },
            }
        },
    }


NODE = _object(
    {
        "name": {"type": "string"},
        "state": {
            "type": "string",
            "description": "as sinfo says it, lower case: idle, mixed, drained, down*, ...",
        },
        "cpus_alloc": {"type": ["integer", "null"]},
        "cpus_total": {"type": ["integer", "null"]},
        "load": {"type": ["number", "null"]},
        "reason": {"type": "string", "description": "why it is drained or down, as SLURM records it"},
    }
)
SCHEMAS.update(
    {
        "Backend": _object(
            {
                "name": {"type": "string"},
                "kind": {"type": "string", "description": "local, slurm or remote"},
                "reachable": {
                    "type": ["boolean", "null"],
                    "description": "at the last harvest; null: not asked yet",
                },
                "checked_at": NULLABLE_TIME,
                "duration": {
                    "type": ["number", "null"],
                    "description": "seconds the last harvest spent asking it",
                },
                "last_error": NULLABLE_STR,
                "last_error_at": NULLABLE_TIME,
                "error_since": {**NULLABLE_TIME, "description": "unreachable since; null while it answers"},
                "errors": {"type": "integer", "description": "harvests that failed, in all"},
                "paused": {"type": "boolean"},
                "paused_by": NULLABLE_STR,
                "paused_at": NULLABLE_TIME,
                "jobs": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                    "description": "its jobs not ended, by status",
                },
                "failed_last_hour": {"type": "integer"},
                "backlog": {"type": "integer", "description": "jobs recorded for it, not yet handed over"},
                "nodes": {
                    "type": ["array", "null"],
                    "items": NODE,
                    "description": "a SLURM backend's nodes as the harvester last listed them",
                },
            }
        ),
        "BackendList": _object({"backends": {"type": "array", "items": _ref("Backend")}}),
        "DrainRequest": _object(
            {"reason": {**TEXT, "minLength": 1, "maxLength": 200, "description": "recorded by SLURM"}},
            additionalProperties=False,
        ),
    }
)
OPERATION_IDS.update(
    {
        ("/api/v1/admin/backends", "get"): "adminListBackends",
        ("/api/v1/admin/backends/{name}/pause", "post"): "adminPauseBackend",
        ("/api/v1/admin/backends/{name}/resume", "post"): "adminResumeBackend",
        ("/api/v1/admin/backends/{name}/nodes/{node}/drain", "post"): "adminDrainNode",
        ("/api/v1/admin/backends/{name}/nodes/{node}/resume", "post"): "adminResumeNode",
    }
)
BACKEND_NAME = {"name": "name", "in": "path", "required": True, "schema": {**TEXT, "maxLength": 64}}
NODE_NAME = {"name": "node", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}}  # fmt: skip
CSRF_NOTE = "With the login cookie, send the X-CSRF-Token header."


def _backend_paths() -> dict:
    def action(summary: str, description: str, params: list, body: str | None = None) -> dict:
        op = {
            "summary": summary,
            "description": STAFF_ONLY + description + " " + CSRF_NOTE,
            "parameters": params,
            "responses": {
                "200": _json(_ref("Backend"), "the backend after it"),
                **_errors(400, 401, 403, 404, 409),
            },
        }
        if body:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
        return {"post": op}

    return {
        "/api/v1/admin/backends": {
            "get": {
                "summary": "Every backend: health, jobs, backlog, pause, SLURM nodes",
                "description": STAFF_ONLY + "Health as the harvester last saw it (kept in the database).",
                "responses": {"200": _json(_ref("BackendList"), "the backends"), **_errors(401, 403)},
            }
        },
        "/api/v1/admin/backends/{name}/pause": action(
            "Pause a backend (audited)",
            "No new submission goes to it; jobs recorded for it and not yet handed over wait until it "
            "is resumed; its jobs continue and it is harvested. 409 if paused already.",
            [BACKEND_NAME],
        ),
        "/api/v1/admin/backends/{name}/resume": action(
            "Resume a paused backend (audited)", "409 if it is not paused.", [BACKEND_NAME]
        ),
        "/api/v1/admin/backends/{name}/nodes/{node}/drain": action(
            "Drain a SLURM node (audited)",
            "scontrol update NodeName=... State=DRAIN Reason=..., as the portal's account: SLURM's "
            "refusal is 409 refused, with its words.",
            [BACKEND_NAME, NODE_NAME],
            "DrainRequest",
        ),
        "/api/v1/admin/backends/{name}/nodes/{node}/resume": action(
            "Resume a drained SLURM node (audited)",
            "scontrol update NodeName=... State=RESUME; SLURM's refusal is 409 refused.",
            [BACKEND_NAME, NODE_NAME],
        ),
    }


# --- comments on a job (views/comments.py, ijpweb/jobs/comments.py) ---

COMMENT_TEXT = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_COMMENT_LENGTH,
    # plain text: no control character but tab and line breaks, and not only white space
    "allOf": [
        {"pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"},
        {"pattern": "\\S"},
    ],
    "description": f"plain text (line breaks kept, never HTML), at most {MAX_COMMENT_LENGTH:,} characters",
}
COMMENT_ID = {
    "name": "comment_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
SCHEMAS.update(
    {
        "Comment": _object(
            {
                "id": {"type": "integer"},
                "job": {"type": "integer"},
                "author": {"type": "string"},
                "text": {"type": "string"},
                "created_at": {"type": "string", "format": "date-time"},
                "edited_at": {**NULLABLE_TIME, "description": "the last edit; null if never edited"},
                "edited": {"type": "boolean"},
                "url": {"type": "string"},
            }
        ),
        "CommentList": _object({"comments": {"type": "array", "items": _ref("Comment")}}),
        "CommentRequest": _object({"text": COMMENT_TEXT}, **STRICT),
    }
)
OPERATION_IDS.update(
    {
        ("/api/v1/jobs/{job_id}/comments", "get"): "listJobComments",
        ("/api/v1/jobs/{job_id}/comments", "post"): "addJobComment",
        ("/api/v1/jobs/{job_id}/comments/{comment_id}", "patch"): "editJobComment",
        ("/api/v1/jobs/{job_id}/comments/{comment_id}", "delete"): "deleteJobComment",
    }
)


def _comment_paths() -> dict:
    body = {"required": True, "content": {"application/json": {"schema": _ref("CommentRequest")}}}
    note = "The job's owner only: another user's job, or a comment of another job, is 404. "
    return {
        "/api/v1/jobs/{job_id}/comments": {
            "get": {
                "summary": "A job's comments, oldest first",
                "parameters": [JOB_ID],
                "responses": {"200": _json(_ref("CommentList"), "the comments"), **_errors(401, 404)},
            },
            "post": {
                "summary": "Comment on a job",
                "description": note + "422 invalid_comment: empty, too long or not plain text.",
                "parameters": [JOB_ID],
                "requestBody": body,
                "responses": {
                    "201": _json(_ref("Comment"), "the comment (Location: its URL)"),
                    **_errors(400, 401, 403, 404, 409, 422),
                },
            },
        },
        "/api/v1/jobs/{job_id}/comments/{comment_id}": {
            "patch": {
                "summary": "Change a comment's text",
                "description": note,
                "parameters": [JOB_ID, COMMENT_ID],
                "requestBody": body,
                "responses": {
                    "200": _json(_ref("Comment"), "the comment, edited"),
                    **_errors(400, 401, 403, 404, 422),
                },
            },
            "delete": {
                "summary": "Delete a comment",
                "description": note,
                "parameters": [JOB_ID, COMMENT_ID],
                "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404)},
            },
        },
    }


# --- data in and out through IDS (views/data.py) ---

DATASET_ID = {"name": "dataset_id", "in": "path", "required": True, "schema": ID}
DATAFILE_ID = {"name": "datafile_id", "in": "path", "required": True, "schema": ID}
BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}
SCHEMAS.update(
    {
        "StoredDatafiles": _object(
            {
                "dataset": {"type": "integer"},
                "datafiles": {
                    "type": "array",
                    "items": _object({"id": {"type": "integer"}, "name": {"type": "string"}}),
                },
            }
        ),
        "NewDataset": _object(
            {
                "investigation": {
                    "type": ["integer", "string"],
                    "description": "the investigation's id, or its name",
                },
                "name": {**TEXT, "minLength": 1, "maxLength": 255},
                "type": {**TEXT, "minLength": 1, "maxLength": 300, "description": "a dataset type's name"},
                "description": {**TEXT, "maxLength": 4000},
            },
            optional=("description",),
            **STRICT,
        ),
        "CreatedDataset": _object(
            {"id": {"type": "integer"}, "name": {"type": "string"}, "url": {"type": "string"}}
        ),
        "DatasetTypes": _object({"types": {"type": "array", "items": {"type": "string"}}}),
    }
)
OPERATION_IDS.update(
    {
        ("/api/v1/datafiles/{datafile_id}/content", "get"): "getDatafileContent",
        ("/api/v1/datafiles/{datafile_id}/download", "get"): "downloadDatafile",
        ("/api/v1/datasets/{dataset_id}/zip", "get"): "getDatasetZip",
        ("/api/v1/zip", "get"): "getZip",
        ("/api/v1/datasets/{dataset_id}/datafiles", "post"): "uploadDatafiles",
        ("/api/v1/datasets", "post"): "createDataset",
        ("/api/v1/datasettypes", "get"): "listDatasetTypes",
    }
)
FILE_BODY = {"description": "the contents, streamed from IDS as you (an attachment)",
             "content": {"application/octet-stream": {"schema": BINARY}}}  # fmt: skip
ZIP_BODY = {"description": "a zip, streamed as it is made: <investigation>/<dataset>/<file>",
            "content": {"application/zip": {"schema": BINARY}}}  # fmt: skip
NOT_YOURS = (
    "What you may not read is answered as what does not exist (404 not_found, 'not found or not "
    "visible to you: datafile 7')."
)


def _data_paths() -> dict:
    content = {
        "get": {
            "summary": "A datafile's contents, from IDS with your session",
            "description": NOT_YOURS,
            "parameters": [DATAFILE_ID],
            "responses": {"200": FILE_BODY, **_errors(401, 404, 503)},
        }
    }
    return {
        "/api/v1/datafiles/{datafile_id}/content": content,
        "/api/v1/datafiles/{datafile_id}/download": {
            "get": {**content["get"], "summary": "The same as .../content"}
        },
        "/api/v1/datasets/{dataset_id}/zip": {
            "get": {
                "summary": "A dataset's datafiles as a zip",
                "description": NOT_YOURS
                + " More files than ijp.download.zip_max_files: 413 too_large, naming it.",
                "parameters": [DATASET_ID],
                "responses": {"200": ZIP_BODY, **_errors(401, 404, 413, 503)},
            }
        },
        "/api/v1/zip": {
            "get": {
                "summary": "Datasets' and datafiles' contents as one zip",
                "description": NOT_YOURS + " Every id must be one you may read: one that is not refuses the "
                "whole zip. More files than ijp.download.zip_max_files: 413 too_large.",
                "parameters": [_ids_param("dataset_ids"), _ids_param("datafile_ids")],
                "responses": {"200": ZIP_BODY, **_errors(401, 404, 413, 503)},
            }
        },
        "/api/v1/datasets/{dataset_id}/datafiles": {
            "post": {
                "summary": "Upload datafiles into a dataset (IDS put, as you)",
                "description": (
                    "A multipart form with one or more 'file' parts (their file names are the datafiles' "
                    "names), or the raw contents as application/octet-stream named by 'name'. The catalog's "
                    "C rule on Datafile decides (403 forbidden); a name must be a plain file name (no '/', "
                    "'\\', '..' or control characters, at most 255 characters); a name the dataset has "
                    "already is 409 exists. Content-Length is required (411); a body larger than "
                    "ijp.upload.max_bytes is 413 too_large, naming the limit. Nothing is stored unless "
                    "every file is. " + CSRF_NOTE
                ),
                "parameters": [
                    DATASET_ID,
                    _text_param("name", "the datafile's name (raw body only)", 10_000),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"file": {"type": "array", "items": BINARY}},
                            }
                        },
                        "application/octet-stream": {"schema": BINARY},
                    },
                },
                "responses": {
                    "201": _json(_ref("StoredDatafiles"), "stored"),
                    **_errors(400, 401, 403, 404, 409, 411, 413, 503),
                },
            }
        },
        "/api/v1/datasets": {
            "post": {
                "summary": "Create a dataset in an investigation you may write",
                "description": "The catalog's C rule on Dataset decides (403 forbidden). " + CSRF_NOTE,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewDataset")}},
                },
                "responses": {
                    "201": _json(_ref("CreatedDataset"), "created"),
                    **_errors(400, 401, 403, 404, 409, 503),
                },
            }
        },
        "/api/v1/datasettypes": {
            "get": {
                "summary": "The facility's dataset types (for a new dataset)",
                "responses": {"200": _json(_ref("DatasetTypes"), "their names"), **_errors(401, 503)},
            }
        },
    }


# --- several jobs at once and the list as a file (views/api.py; ijpweb.jobs.actions, .export) ---

MAX_BULK = 200  # ijpweb.jobs.actions.MAX_BULK: a page of the list
BULK_IDS = {"type": "array", "minItems": 1, "maxItems": MAX_BULK, "items": JOB,
            "description": f"the jobs, by id (at most {MAX_BULK}: a page of the list); more is a 400"}  # fmt: skip
SCHEMAS.update(
    {
        "JobInputs": _object(
            {
                "datasets": {
                    "type": "array",
                    "items": _object({"id": {"type": "integer"}, "name": NULLABLE_STR}),
                },
                "datafiles": {
                    "type": "array",
                    "items": _object(
                        {"id": {"type": "integer"}, "name": NULLABLE_STR, "dataset": NULLABLE_STR}
                    ),
                },
            },
            description="the inputs by name, as the catalog showed them to you at submission (null: a job "
            "from before names were kept)",
        ),  # fmt: skip
        "BulkRequest": _object({"ids": BULK_IDS}, **STRICT),
        "BulkTagRequest": _object(
            {"ids": BULK_IDS, "add": _ref("Tags"), "remove": _ref("Tags")},
            optional=("add", "remove"),
            **STRICT,
        ),
        "BulkResult": _object(
            {
                "summary": {
                    "type": "string",
                    "description": "e.g. Cancelled 3; 1 had already ended; 1 not found",
                },
                "results": {
                    "type": "array",
                    "items": _object(
                        {
                            "id": {"type": "integer"},
                            "result": {
                                "enum": ["done", "skipped", "failed", "not_found"],
                                "description": "skipped: nothing to do (a cancel of an ended job, a delete of a "
                                "live one); not_found: no job of yours has this id",
                            },
                            "message": {"type": "string"},
                        }
                    ),
                },
            }
        ),
    }
)
OPERATION_IDS.update(
    {
        ("/api/v1/jobs/cancel", "post"): "cancelJobs",
        ("/api/v1/jobs/delete", "post"): "deleteJobs",
        ("/api/v1/jobs/tags", "post"): "tagJobs",
        ("/api/v1/jobs/export", "get"): "exportJobs",
    }
)
LIST_FILTERS = [
    {"name": "status", "in": "query", "schema": {"enum": [*STATUSES, "live"]}},
    _text_param("job_type"),
    _text_param("tag"),
    {"name": "submission", "in": "query", "schema": JOB},
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
]


def _joblist_paths() -> dict:
    each = ("Each job is acted on as its own endpoint does, in one request, and reported one by one: a job "
            "that is not yours is not_found exactly like a missing one, and nothing else is said of it.")  # fmt: skip

    def bulk(summary: str, schema: str) -> dict:
        return {
            "post": {
                "summary": summary,
                "description": each,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(schema)}}},
                "responses": {
                    "200": _json(_ref("BulkResult"), "what was done, job by job"),
                    **_errors(400, 401, 422),
                },
            }
        }

    return {
        "/api/v1/jobs/cancel": bulk("Cancel several of your jobs", "BulkRequest"),
        "/api/v1/jobs/delete": bulk("Delete several of your ended jobs and their files", "BulkRequest"),
        "/api/v1/jobs/tags": bulk(
            "Add tags to several of your jobs, or take tags off them", "BulkTagRequest"
        ),
        "/api/v1/jobs/export": {
            "get": {
                "summary": "Your jobs with the list's filters as one CSV or JSON file, streamed",
                "description": "Every job of the filtered list, newest first (by submission time with since or "
                "until); no paging: the file is written while it is read. CSV cells that a spreadsheet would "
                "run as a formula (starting with = + - @) start with '.",
                "parameters": [
                    *LIST_FILTERS,
                    {
                        "name": "format",
                        "in": "query",
                        "schema": {"enum": ["csv", "json"]},
                        "description": "csv (the default) or json",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the file (Content-Disposition: attachment)",
                        "content": {
                            "text/csv": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                        },
                    },
                    **_errors(400, 401),
                },
            }
        },
    }


# --- a job's output files and variables (views/outputs.py) ----------------------------------

OUTPUT_NAME = {
    "name": "name",
    "in": "query",
    "required": True,
    "schema": {**TEXT, "minLength": 1, "maxLength": 4096},
    "description": "the file's path inside the job's output directory, as listed ('/' between "
    "directories); '..', absolute paths and NUL are 400, a name that is not a regular file there "
    "(or leads through a symlink) 404",
}
SCHEMAS.update(
    {
        "OutputFile": _object(
            {
                "name": {"type": "string"},
                "size": {"type": "integer"},
                "modified": {"type": "string", "format": "date-time"},
                "download_url": {"type": "string"},
            }
        ),
        "OutputFileList": _object(
            {
                "files": {"type": "array", "items": _ref("OutputFile"), "maxItems": 500},
                "total": {"type": "integer", "description": "regular files in the output directory"},
                "total_size": {"type": "integer"},
                "more": {
                    "type": "boolean",
                    "description": "more files than are listed: the zip holds them all",
                },
                "others": {
                    "type": "integer",
                    "description": "symlinks and special files in the output directory: neither listed nor served",
                },
                "unnamed": {
                    "type": "integer",
                    "description": "entries whose names are not UTF-8 (cannot be shown): neither listed nor served",
                },
                "zip_url": {**NULLABLE_STR, "description": "all of them as one zip"},
                "unavailable": {"type": "string", "description": "why the backend offers no files now"},
            },
            optional=("unavailable",),
        ),
        "JobDetail": {
            "allOf": [
                _ref("Job"),
                _object(
                    {
                        "output_files": {"type": "array", "items": _ref("OutputFile"), "maxItems": 500},
                        "output_files_total": {"type": "integer"},
                        "outputs_zip_url": NULLABLE_STR,
                        "output_vars": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "OUT_NAME=value lines the job wrote to $JOB_OUTPUT_VARS "
                            "(captured when it ended; at most 1,000 and 64 KB)",
                        },
                        "output_vars_skipped": {
                            "type": "integer",
                            "description": "lines that were not OUT_NAME=value",
                        },
                        "output_vars_incomplete": {
                            "type": "boolean",
                            "description": "some were left out (bounds)",
                        },
                    }
                ),
            ]
        },
    }
)
OPERATION_IDS.update(
    {
        ("/api/v1/jobs/{job_id}/files", "get"): "listJobOutputFiles",
        ("/api/v1/jobs/{job_id}/file", "get"): "downloadJobOutputFile",
        ("/api/v1/jobs/{job_id}/outputs.zip", "get"): "downloadJobOutputsZip",
    }
)


def _output_paths() -> dict:
    binary = {
        "application/octet-stream": {
            "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
        }
    }
    note = "The job's owner only: another user's job is 404. "
    return {
        "/api/v1/jobs/{job_id}/files": {
            "get": {
                "summary": "A job's output files (the first 500 by name), with download URLs",
                "description": note + "Symlinks and special files are never listed nor served.",
                "parameters": [JOB_ID],
                "responses": {"200": _json(_ref("OutputFileList"), "the files"), **_errors(401, 404, 503)},
            }
        },
        "/api/v1/jobs/{job_id}/file": {
            "get": {
                "summary": "Download one output file (streamed, as an attachment)",
                "description": note,
                "parameters": [JOB_ID, OUTPUT_NAME],
                "responses": {
                    "200": {"description": "the file's bytes", "content": binary},
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/api/v1/jobs/{job_id}/outputs.zip": {
            "get": {
                "summary": "All of a job's output files as one zip (streamed)",
                "description": note,
                "parameters": [JOB_ID],
                "responses": {
                    "200": {
                        "description": "a zip",
                        "content": {
                            "application/zip": {
                                "schema": {"type": "string", "contentMediaType": "application/zip"}
                            }
                        },
                    },
                    **_errors(401, 404, 503),
                },
            }
        },
    }


# GET /api/v1/jobs/{id} also says how many comments the job has (views/comments.py), and
# where they are
SCHEMAS["JobDetail"]["allOf"].append(
    _object({"comments": {"type": "integer", "minimum": 0}, "comments_url": {"type": "string"}})
)


def document(server_url: str = "/") -> dict:
    doc = _document(server_url)
    doc["paths"].update(_admin_paths())
    doc["paths"].update(_backend_paths())
    doc["paths"].update(_comment_paths())
    doc["paths"].update(_joblist_paths())
    doc["paths"].update(_output_paths())
    job_get = doc["paths"]["/api/v1/jobs/{job_id}"]["get"]
    job_get["responses"]["200"] = _json(_ref("JobDetail"), "the job with its output files and variables")
    for path, operations in _data_paths().items():  # (two of its paths have a GET already)
        doc["paths"].setdefault(path, {}).update(operations)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            operation["operationId"] = OPERATION_IDS[(path, method)]
            if "requestBody" in operation:  # a body larger than the API reads
                operation["responses"].update(_errors(413))
            # an unknown query parameter or body field (unknown_parameter, unknown_field);
            # the database locked by another's write past the busy timeout (database_busy,
            # with Retry-After); the user's catalog queries at once (catalog_busy)
            operation["responses"].update(
                _errors(*(c for c in (400, 429, 503) if str(c) not in operation["responses"]))
            )
    return doc


def _document(server_url: str) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "ijpweb API", "version": "1"},
        "servers": [{"url": server_url}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from POST /api/v1/session",
                },
                "cookie": {"type": "apiKey", "in": "cookie", "name": "ijp_auth"},
            },
        },
        "security": BEARER,
        "paths": {
            "/api/v1/session": {
                "post": {
                    "summary": "Log in with catalog credentials; returns a bearer token",
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Credentials")}},
                    },
                    # 429: too many failed logins for the user name or the address (throttled),
                    # or too_many_tokens: the user holds ijp.api.max_tokens live tokens already
                    "responses": {"201": _json(_ref("Token"), "logged in"), **_errors(400, 401, 429, 503)},
                },
                "get": {
                    "summary": "Who the token belongs to",
                    "responses": {"200": _json(_ref("Session"), "the session"), **_errors(401)},
                },
                "delete": {
                    "summary": "Revoke this bearer token",
                    "responses": {"204": {"description": "revoked"}, **_errors(400, 401)},
                },
            },
            "/api/v1/jobtypes": {
                "get": {
                    "summary": "The job types",
                    "responses": {
                        "200": _json(
                            _object({"jobtypes": {"type": "array", "items": _ref("JobType")}}),
                            "every job type",
                        ),
                        **_errors(401),
                    },
                }
            },
            "/api/v1/jobtypes/{name}": {
                "get": {
                    "summary": "One job type with its options",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": _json(_ref("JobType"), "the job type"), **_errors(401, 404)},
                }
            },
            "/api/v1/jobtypes/{name}/options": {
                "get": {
                    "summary": "What a job type offers for a selection of datasets and datafiles",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                        _ids_param("datasets"),
                        _ids_param("datafiles"),
                    ],
                    "responses": {
                        "200": _json(_ref("SelectionOptions"), "the options that apply"),
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/datasets": {
                "get": {
                    "summary": "Datasets you can see, by investigation then name (a keyset page)",
                    "parameters": [
                        _text_param("type"),
                        _text_param("investigation"),
                        _text_param("name", "part of it", 1000),
                        LIST_CURSOR,
                        CAPPED_PER_PAGE,
                    ],
                    "responses": {
                        "200": _json(_ref("DatasetList"), "a page of datasets"),
                        **_errors(400, 401, 503),
                    },
                }
            },
            "/api/v1/datasets/{dataset_id}": {
                "get": {
                    "summary": "A dataset with its parameters and the first page of its datafiles",
                    "parameters": [
                        {
                            "name": "dataset_id",
                            "in": "path",
                            "required": True,
                            "schema": ID,
                        },
                        _text_param("file", "part of a datafile's name", 1000),
                        CAPPED_PER_PAGE,
                    ],
                    "responses": {
                        "200": _json(_ref("DatasetDetail"), "the dataset"),
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/datasets/{dataset_id}/datafiles": {
                "get": {
                    "summary": "A page of a dataset's datafiles (those you may read), by name",
                    "parameters": [
                        {"name": "dataset_id", "in": "path", "required": True, "schema": ID},
                        _text_param("file", "part of a datafile's name", 1000),
                        LIST_CURSOR,
                        CAPPED_PER_PAGE,
                    ],
                    "responses": {
                        "200": _json(_ref("DatafileList"), "a page of datafiles"),
                        **_errors(400, 401, 404, 503),
                    },
                }
            },
            "/api/v1/jobs/{job_id}/tags": {
                "put": {
                    "summary": "Replace a job's tags",
                    "parameters": [JOB_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _object({"tags": _ref("Tags")}, **STRICT)}
                        },
                    },
                    "responses": {"200": _json(_ref("Job"), "the job"), **_errors(400, 401, 403, 404, 422)},
                }
            },
            "/api/v1/submissions": {
                "post": {
                    "summary": "Submit one job, or one per input",
                    "description": "400 wrong_inputs: the job type's inputs rule (see JobType.inputs; "
                    "checked per job) does not allow this selection; the message says what it needs "
                    "and what was selected.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("SubmissionRequest")}},
                    },
                    "responses": {
                        "201": {
                            **_json(_ref("Submission"), "the jobs, recorded and being handed to a backend"),
                            "links": JOB_LINKS,
                        },
                        **_errors(400, 401, 403, 404, 422, 503),
                    },
                }
            },
            "/api/v1/jobs": {
                "get": {
                    "summary": "Your jobs, newest first",
                    "description": "A keyset: each page has next (older) and previous (newer) cursors "
                    "to pass as cursor=, with the same filters; next_url and previous_url are those pages' "
                    "URLs. With since or until the order is by submission time (then id).",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"enum": [*STATUSES, "live"]}},
                        _text_param("job_type"),
                        _text_param("tag"),
                        {"name": "submission", "in": "query", "schema": JOB},
                        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        LIST_CURSOR,
                        {
                            "name": "per_page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                            "description": "jobs per page (25); more than 200 gives 200, and per_page_capped says so",
                        },
                    ],
                    "responses": {"200": _json(_ref("JobList"), "a page of jobs"), **_errors(400, 401)},
                }
            },
            "/api/v1/jobs/{job_id}": {
                "get": {
                    "summary": "One job with its runtime information",
                    "parameters": [JOB_ID],
                    "responses": {"200": _json(_ref("Job"), "the job"), **_errors(401, 404)},
                },
                "delete": {
                    "summary": "Delete an ended job and its files",
                    "parameters": [JOB_ID],
                    "responses": {"204": {"description": "deleted"}, **_errors(401, 404, 409)},
                },
            },
            "/api/v1/jobs/{job_id}/cancel": {
                "post": {
                    "summary": "Cancel a live job",
                    "parameters": [JOB_ID],
                    "responses": {
                        "200": _json(_ref("Job"), "the job after the cancel"),
                        **_errors(401, 404, 409),
                    },
                }
            },
            "/api/v1/jobs/{job_id}/end": {
                "post": {
                    "summary": "End an interactive job's desktop session",
                    "description": "As the job page's End session: the program, its display and the VNC "
                    "server stop, and the job ends Completed with the reason 'ended by the user'. A batch "
                    "job has no session (404); an ended one is a 409.",
                    "parameters": [JOB_ID],
                    "responses": {
                        "200": _json(_ref("Job"), "the job, its session ending"),
                        **_errors(401, 404, 409, 503),
                    },
                }
            },
            "/api/v1/jobs/{job_id}/output/{stream}": {
                "get": {
                    "summary": "stdout or stderr from a byte offset, for tailing",
                    "parameters": [
                        JOB_ID,
                        {
                            "name": "stream",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": ["stdout", "stderr"]},
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1048576},
                        },
                    ],
                    "responses": {"200": _json(_ref("Output"), "a chunk"), **_errors(400, 401, 404, 503)},
                }
            },
        },
    }

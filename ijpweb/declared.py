"""What each /api/v1 operation accepts, and the check of a request against it.

The one declaration of an operation is its entry in the OpenAPI document
(:mod:`ijpweb.openapi`): its query parameters and its request body's schema, whose
objects say ``additionalProperties: false``. The views check every request against that
same entry (views/api.py), so the document and the check cannot say different things.
A name that is not declared is refused naming it, with the declared name it most looks
like (``tagz``: did you mean ``tags``?).

No Pyramid here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from .openapi import SCHEMAS, document
from .planning import shown_name

# an unknown name is named in the answer: at most this many of them, each shown shortened
MAX_NAMED = 20
# names longer than this are not compared with the declared ones (no one misspelt them)
MAX_SUGGESTED_LENGTH = 100
# the document itself is served under /api/v1 without being one of its operations
DOCUMENT, DOCUMENT_PATH = "openapiDocument", "/api/v1/openapi.json"
_PLACEHOLDER = re.compile(r"\{(\w+):[^}]*\}")


@dataclass(frozen=True)
class Accepts:
    """What one operation accepts: the names of its query parameters, and the JSON
    schema of its body (None: it takes none)."""

    query: tuple[str, ...]
    body: Mapping[str, Any] | None


@dataclass(frozen=True)
class Unknown:
    """A name that is not declared where it was given: ``path`` names it as the answer
    does (``tagz``, ``options.Colour``), ``reason`` says what it is not."""

    path: str
    reason: str


def resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` itself, or the component it refers to."""
    ref = schema.get("$ref", "")
    prefix = "#/components/schemas/"
    return SCHEMAS[ref[len(prefix) :]] if ref.startswith(prefix) else schema


@cache
def operations() -> dict[str, Accepts]:
    """Every operation's declaration, by its operationId."""
    return {op_id: accepts for (_path, _method), (op_id, accepts) in _by_path().items()}


@cache
def _by_path() -> dict[tuple[str, str], tuple[str, Accepts]]:
    found = {(DOCUMENT_PATH, "GET"): (DOCUMENT, Accepts((), None))}
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            query = tuple(p["name"] for p in op.get("parameters", ()) if p["in"] == "query")
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            found[path, method.upper()] = (op["operationId"], Accepts(query, resolve(body) if body else None))
    return found


def accepts(operation_id: str) -> Accepts:
    """The declaration of ``operation_id``; KeyError if the document has no such operation."""
    return operations()[operation_id]


def at(pattern: str, method: str) -> Accepts | None:
    """The declaration of the operation at a route's ``pattern`` (``{name:regex}`` is the
    document's ``{name}``) and ``method``; None if the document describes none there."""
    found = _by_path().get((_PLACEHOLDER.sub(r"{\1}", pattern), method.upper()))
    return found[1] if found else None


def suggestion(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` most looks like, if one is close enough to be a slip."""
    if len(name) > MAX_SUGGESTED_LENGTH:
        return None
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_names(given: Iterable[str], known: Iterable[str], what: str, prefix: str = "") -> list[Unknown]:
    """The names in ``given`` that are not in ``known``, in the order given, each with
    the known name it most looks like; ``what`` says what they are not ("field")."""
    known = list(known)
    out: list[Unknown] = []
    for name in dict.fromkeys(n for n in given if n not in known):
        # only those the answer names are compared (a body may hold thousands)
        near = suggestion(name, known) if len(out) < MAX_NAMED else None
        reason = f"no such {what}" + (f" (did you mean {near!r}?)" if near else "")
        out.append(Unknown(prefix + shown_name(name), reason))
    return out


def unknown_fields(body: Any, schema: Mapping[str, Any], prefix: str = "") -> list[Unknown]:
    """The fields of a JSON ``body`` that ``schema`` does not declare, in objects of a
    fixed shape (``additionalProperties: false``) at any depth; nested ones are named by
    their path (``a.b``). Values of the wrong type are left to the view to name."""
    schema = resolve(schema)
    if not isinstance(body, dict) or schema.get("additionalProperties", True) is not False:
        return []
    properties = schema.get("properties", {})
    out = unknown_names(body, properties, "field", prefix)
    for key, sub in properties.items():
        if key in body:
            out += unknown_fields(body[key], sub, f"{prefix}{key}.")
    return out


def refusal(unknown: list[Unknown]) -> tuple[str, dict[str, str]]:
    """The message and the fields of the answer that refuses ``unknown`` (not empty)."""
    named = unknown[:MAX_NAMED]
    message = "; ".join(f"{u.path}: {u.reason}" for u in named)
    if len(unknown) > len(named):
        message += f"; and {len(unknown) - len(named)} more"
    return message, {u.path: u.reason for u in named}

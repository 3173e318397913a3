"""Selection + job type + option values -> the jobs to run (ijp-formats.md §3).

Pure: no Pyramid, no database. The argv is built exactly as the original IJP built it:
``--datasetIds=``, ``--datafileIds=``, the options in document order (one element for a
checkbox or a radio choice, two for the other types, empty values and empty
programParameters omitted), then ``--sessionId=``, ``--icatUrl=``, ``--idsUrl=`` as the
job type asks, and ``--ijpJobId=``/``--ijpUrl=`` for batch types that create provenance.

Every value must be able to be one argv element: no NUL character, no lone surrogate
(it cannot be encoded, stored or shown), at most ``max_length`` characters (the
setting ``ijp.max_value_length``). :func:`parse_argv` reads an argument list as the
original API's clients send it back into form values, so that list goes through the
same validation as the form.

The session id is a credential: the argv stored and shown carries
:data:`SESSION_ARG`, a visible stand-in; the backend puts the real value in the
job's environment (``IJP_SESSION_ID``) and, only where a facility opts in for legacy
scripts, into the argv of the process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import conditions, inputs
from .jobtypes import BLANKS, JobOption, JobType, number_text, parse_bool, parse_number

SESSION_ENV = "IJP_SESSION_ID"
SESSION_ARG = "--sessionId=${IJP_SESSION_ID}"
# characters of one value (ijp.max_value_length); at most 4 UTF-8 bytes each, so even the
# largest allowed setting stays below the kernel's 128 KiB per argv element
MAX_VALUE_LENGTH = 4096
MAX_VALUE_LENGTH_LIMIT = 32768


class PlanError(ValueError):
    """The request cannot be planned; ``fields`` maps option names to messages."""

    def __init__(self, message: str, fields: Mapping[str, str] | None = None, code: str = ""):
        super().__init__(message)
        self.fields = dict(fields or {})
        self.code = code or ("invalid_options" if fields else "invalid_request")


@dataclass(frozen=True)
class DatasetInfo:
    """What planning needs to know of a selected dataset."""

    id: int
    type_name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    datasets: tuple[DatasetInfo, ...] = ()
    datafile_ids: tuple[int, ...] = ()

    @property
    def dataset_ids(self) -> tuple[int, ...]:
        return tuple(d.id for d in self.datasets)

    @property
    def size(self) -> int:
        return len(self.datasets) + len(self.datafile_ids)


@dataclass(frozen=True)
class JobPlan:
    """One job to create: its inputs and its argv (without provenance arguments)."""

    dataset_ids: tuple[int, ...]
    datafile_ids: tuple[int, ...]
    args: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    job_type: JobType
    mode: str  # single | each
    values: dict[str, Any]  # validated option values by key (option or group name)
    jobs: tuple[JobPlan, ...]


# --- which job types and options apply ------------------------------------------------


def incompatibility(jt: JobType, sel: Selection) -> str | None:
    """Why ``jt`` cannot run on ``sel`` (the TopCAT rules of §3.2), or None."""
    if sel.size == 0:
        return None if jt.job_only else "select a dataset or datafile first"
    if jt.job_only:
        return "this job type takes no datasets or datafiles"
    if sel.datasets:
        if not jt.accepts_datasets:
            return "this job type does not accept datasets"
        bad = sorted({d.type_name for d in sel.datasets if not jt.accepts_dataset_type(d.type_name)})
        if bad:
            return f"this job type does not accept datasets of type {', '.join(bad)}"
    if sel.datafile_ids and not jt.accepts_datafiles:
        return "this job type does not accept datafiles"
    if sel.size > 1 and jt.interactive and not jt.multiple:
        return "this interactive job type takes one input"
    return None


def _noun(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def inputs_problem(jt: JobType, sel: Selection, mode: str) -> str | None:
    """Why ``jt``'s ``<inputs>`` rule refuses ``sel`` submitted as ``mode`` (single: one
    job with it all; each: one job per input), or None. The rule is per job."""
    rule = jt.inputs
    if rule is None:
        return None
    n_ds, n_df = len(sel.datasets), len(sel.datafile_ids)
    if mode == "single":
        if rule.allows(n_ds, n_df):
            return None
        return (
            f"{jt.name} needs {rule.needs()}; you selected "
            f"{_noun(n_ds, 'dataset')} and {_noun(n_df, 'datafile')}"
        )
    if (not n_ds or rule.allows(1, 0)) and (not n_df or rule.allows(0, 1)):
        return None
    return f"{jt.name} needs {rule.needs()} in each job; one job per input gives each job a single dataset or datafile"


def possible_modes(jt: JobType, sel: Selection) -> tuple[str, ...]:
    """The ways ``sel`` can be submitted to ``jt``: see :func:`choice_needed`."""
    need = choice_needed(jt, sel)
    return {"confirm": ("each",), "mode": ("single", "each")}.get(need, ("single",))


def compatible(job_types: Sequence[JobType], sel: Selection) -> list[JobType]:
    return [jt for jt in job_types if incompatibility(jt, sel) is None]


def option_applies(opt: JobOption, sel: Selection) -> bool:
    """An option with a condition applies only if it holds for every selected dataset;
    with no dataset selected, conditional options do not apply."""
    if not opt.condition:
        return True
    if not sel.datasets or opt.parsed_condition is None:
        return False
    return all(conditions.is_true(opt.parsed_condition, d.parameters) for d in sel.datasets)


def visible_options(jt: JobType, sel: Selection) -> list[JobOption]:
    return [o for o in jt.options if option_applies(o, sel)]


def condition_problems(jt: JobType, sel: Selection) -> list[str]:
    """Conditions that could not be evaluated (staff need to know; they count as false)."""
    out = []
    for o in jt.options:
        if not o.parsed_condition:
            continue
        for d in sel.datasets:
            try:
                o.parsed_condition.evaluate(d.parameters)
            except conditions.ConditionError as e:
                out.append(f"option {o.name!r}, dataset {d.id}: {e}")
    return out


# --- values ---------------------------------------------------------------------------


def default_values(options: Sequence[JobOption]) -> dict[str, Any]:
    """The values a fresh form shows: defaultValue where given (TopCAT's rules)."""
    out: dict[str, Any] = {}
    for o in options:
        if o.is_radio:
            if o.group_name not in out or parse_bool(o.default_value or "") is True:
                out[o.group_name] = o.name
        elif o.is_checkbox:
            out[o.name] = parse_bool(o.default_value or "false") is True
        elif o.type == "enumeration":
            d = o.default_value
            out[o.name] = d if d is not None and d in o.values else (o.values[0] if o.values else "")
        elif o.default_value is not None:
            out[o.name] = o.default_value
        else:
            out[o.name] = ""
    return out


def _as_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def argv_problem(text: str, max_length: int | None = MAX_VALUE_LENGTH) -> str | None:
    """Why ``text`` cannot be one argv element (None if it can): it must be text as
    :func:`ijpweb.inputs.text` checks it for every face (a NUL ends a C string, a lone
    surrogate cannot be encoded, nor stored, nor shown), at most ``max_length``
    characters (None: no length limit)."""
    try:
        inputs.text(text, "", max_length)
    except inputs.InputError as e:
        return e.reason
    return None


def shown_name(text: str, limit: int = 60) -> str:
    """A user-given name as a message can show it: as it is if short and printable,
    otherwise quoted, cut short, with escapes for what cannot be printed or encoded."""
    if len(text) <= limit and text.isprintable():
        return text
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def validate(
    options: Sequence[JobOption],
    submitted: Mapping[str, Any],
    *,
    strict: bool = False,
    all_options: Sequence[JobOption] = (),
    max_length: int = MAX_VALUE_LENGTH,
) -> dict[str, Any]:
    """Check ``submitted`` (keyed by option name, or group name for radio options)
    against the options that apply. Missing values take the form's defaults. Returns the
    clean values; raises :class:`PlanError` with a message per bad field. With
    ``strict``, keys that name no applicable option are errors too. No value that
    :func:`argv_problem` refuses gets through, whatever the option's type."""
    defaults = default_values(options)
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    groups: dict[str, list[JobOption]] = {}
    for o in options:
        if o.is_radio:
            groups.setdefault(o.group_name, []).append(o)

    def unusable(key: str, raw: Any) -> str | None:
        if raw is not None and not isinstance(raw, str | bool | int | float):
            return f"{key}: give a single value, not a {type(raw).__name__}"
        problem = argv_problem(_as_text(raw), max_length)
        return f"{key}: {problem}" if problem else None

    for o in options:
        if o.is_radio:
            continue
        key = o.name
        raw = submitted.get(key, defaults[key])
        if isinstance(raw, list | tuple):  # an option given more than once, or a JSON list
            errors[key] = (
                f"{o.name}: give one value" if len(raw) != 1 else f"{o.name}: give a single value, not a list"
            )
            continue
        if problem := unusable(key, raw):
            errors[key] = problem
            continue
        if o.is_checkbox:
            b = raw if isinstance(raw, bool) else parse_bool(_as_text(raw).lower())
            if b is None and _as_text(raw).lower() in ("on", "yes"):
                b = True
            elif b is None and _as_text(raw).lower() in ("off", "no", ""):
                b = False
            if b is None:
                errors[key] = f"{o.name}: must be true or false"
            else:
                clean[key] = b
            continue
        text = _as_text(raw)
        if o.type == "enumeration":
            if text not in o.values:
                allowed = ", ".join(repr(v) for v in o.values)
                errors[key] = f"{o.name}: {text!r} is not one of {allowed}"
            else:
                clean[key] = text
        elif o.type == "string":
            clean[key] = text
        else:  # integer, float: checked by the one grammar, passed on normalised
            text = text.strip(BLANKS)
            if text == "":
                clean[key] = ""
                continue
            try:
                n = parse_number(o.type, text)
            except ValueError:
                kind = "a whole number" if o.type == "integer" else "a number"
                errors[key] = f"{o.name}: {text[:40]!r} is not {kind}"
                continue
            lo, hi = o.bound("min"), o.bound("max")
            if lo is not None and n < lo:
                errors[key] = f"{o.name}: must be at least {o.min_value}"
            elif hi is not None and n > hi:
                errors[key] = f"{o.name}: must be at most {o.max_value}"
            else:
                clean[key] = number_text(n)

    for group, members in groups.items():
        raw = submitted.get(group, defaults[group])
        if isinstance(raw, list | tuple):
            errors[group] = (
                f"{group}: choose exactly one"
                if len(raw) != 1
                else f"{group}: give a single value, not a list"
            )
            continue
        if problem := unusable(group, raw):
            errors[group] = problem
            continue
        names = [m.name for m in members]
        if raw not in names:
            errors[group] = f"{group}: {_as_text(raw)!r} is not one of {', '.join(names)}"
        else:
            clean[group] = raw

    if strict:
        known = {o.key for o in options}
        hidden = {o.key for o in all_options} - known
        for key in submitted:
            if key in hidden:
                errors.setdefault(key, f"{key}: does not apply to this selection")
            elif key not in known:
                name = shown_name(key, 200)
                errors.setdefault(name, f"{name}: no such option")
    if errors:
        raise PlanError("some option values are not valid", errors)
    return clean


def option_args(options: Sequence[JobOption], values: Mapping[str, Any]) -> list[str]:
    """The option part of the argv, in document order."""
    args: list[str] = []
    for o in options:
        pp = o.program_parameter
        if not pp:
            continue
        if o.is_radio:
            if values.get(o.group_name) == o.name:
                args.append(pp)
        elif o.is_checkbox:
            if values.get(o.name) is True:
                args.append(pp)
        else:
            v = values.get(o.name, "")
            if v != "":
                args.extend((pp, str(v)))
    return args


def _ids(prefix: str, ids: Sequence[int]) -> list[str]:
    return [f"{prefix}{','.join(str(i) for i in ids)}"] if ids else []


def build_args(
    jt: JobType,
    dataset_ids: Sequence[int],
    datafile_ids: Sequence[int],
    opts: list[str],
    icat_url: str = "",
    ids_url: str = "",
) -> tuple[str, ...]:
    args = _ids("--datasetIds=", dataset_ids) + _ids("--datafileIds=", datafile_ids) + opts
    if jt.session_id:
        args.append(SESSION_ARG)
    if jt.icat_url_required:
        args.append(f"--icatUrl={icat_url}")
    if jt.ids_url_required:
        args.append(f"--idsUrl={ids_url}")
    return tuple(args)


def provenance_args(jt: JobType, job_id: int, ijp_url: str) -> list[str]:
    if jt.creates_provenance and not jt.interactive:
        return [f"--ijpJobId={job_id}", f"--ijpUrl={ijp_url}"]
    return []


# --- an argument list back into form values (the original API's clients) ------------------


@dataclass(frozen=True)
class ArgvRequest:
    """What an argument list asks for: inputs, and option values by option key (a list
    where an option was given more than once, which :func:`validate` refuses)."""

    dataset_ids: tuple[int, ...]
    datafile_ids: tuple[int, ...]
    values: dict[str, Any]


ID_PARAMETERS = ("--datasetIds", "--datafileIds")
# a client's own is dropped: the portal gives the job its session (never on argv)
DROPPED = "--sessionId="
# what the portal adds itself where the job type asks for it
PORTAL_ARGS = ("--icatUrl=", "--idsUrl=", "--ijpJobId=", "--ijpUrl=")
MAX_PARAMETERS = 1000  # far more than any form produces
MAX_REPORTED = 10  # problems named in one refusal


def _portal_adds(jt: JobType) -> tuple[str, ...]:
    """Arguments the portal gives a job of ``jt`` itself: a client may send them (they are
    replaced by the portal's own values) only where the job type asks for them."""
    out = []
    if jt.icat_url_required:
        out.append("--icatUrl=")
    if jt.ids_url_required:
        out.append("--idsUrl=")
    if jt.creates_provenance and not jt.interactive:
        out += ["--ijpJobId=", "--ijpUrl="]
    return tuple(out)


def parse_argv(jt: JobType, params: Sequence[str], *, max_length: int = MAX_VALUE_LENGTH) -> ArgvRequest:
    """Read an argument list as a form of ``jt`` would have produced it: ``--datasetIds``
    and ``--datafileIds`` (``=ids`` or the ids as the next parameter), a checkbox's or a
    radio choice's programParameter alone, any other option's programParameter followed
    by its value. A client's ``--sessionId=`` is dropped; ``--icatUrl=``, ``--idsUrl=``,
    ``--ijpJobId=`` and ``--ijpUrl=`` are accepted (and replaced by the portal's) only
    where the job type asks for them. Anything else raises :class:`PlanError` whose
    ``fields`` are keyed by the parameter. The values are then for :func:`plan` with
    ``from_argv``, which validates them as it validates a form's."""
    if len(params) > MAX_PARAMETERS:
        raise PlanError(
            f"parameter: at most {MAX_PARAMETERS} parameters (got {len(params)})",
            {"parameter": f"at most {MAX_PARAMETERS}"},
            code="invalid_parameters",
        )
    one: dict[str, list[JobOption]] = {}  # checkboxes and radio choices: one element
    two: dict[str, list[JobOption]] = {}  # the others: the parameter, then the value
    for o in jt.options:
        if o.program_parameter:
            (one if o.type == "boolean" else two).setdefault(o.program_parameter, []).append(o)
    used: dict[str, int] = {}
    values: dict[str, list[Any]] = {}
    ids: dict[str, list[int]] = {}
    errors: dict[str, str] = {}
    portal = _portal_adds(jt)

    def refuse(param: str, message: str) -> None:
        name = shown_name(param)
        errors.setdefault(name, f"{name}: {message}")

    def option_for(pp: str, table: dict[str, list[JobOption]]) -> JobOption:
        # options sharing a programParameter take its occurrences in document order
        k = used.get(pp, 0)
        used[pp] = k + 1
        return table[pp][min(k, len(table[pp]) - 1)]

    i = 0
    while i < len(params):
        p = params[i]
        i += 1
        name, eq, rest = p.partition("=")
        if problem := argv_problem(p, None if name in ID_PARAMETERS else max_length):
            refuse(p, problem)
        elif name in ID_PARAMETERS:
            if not eq:  # the two-argument form
                if i >= len(params):
                    refuse(name, "a list of ids must follow it")
                    continue
                rest = params[i]
                i += 1
            if name in ids:
                refuse(name, "given more than once")
                continue
            # ids separated by commas (empty pieces are skipped: the original's GWT client
            # sent --datasetIds= even with no datasets)
            try:
                ids[name] = inputs.id_list(inputs.text(rest, name), name)
            except inputs.InputError as e:
                refuse(name, f"{e.reason} (a comma-separated list of ids)")
        elif p.startswith(DROPPED):
            continue
        elif p.startswith(PORTAL_ARGS):
            if not p.startswith(portal):
                refuse(name, f"job type {jt.name} does not ask for it")
        elif p in one:
            o = option_for(p, one)
            values.setdefault(o.key, []).append(o.name if o.is_radio else True)
        elif p in two:
            o = option_for(p, two)
            if i >= len(params):
                refuse(p, f"the value of option {o.name} must follow it")
                continue
            value = params[i]
            i += 1
            if problem := argv_problem(value, max_length):
                refuse(f"{p} ({o.name})", problem)
            else:
                values.setdefault(o.key, []).append(value)
        else:
            declared = sorted({*one, *two})
            known = f"its options are {', '.join(declared)}" if declared else "it has no options"
            refuse(p, f"not a parameter of job type {jt.name} ({known})")
    if errors:
        shown = list(errors.values())[:MAX_REPORTED]
        more = len(errors) - len(shown)
        message = "; ".join(shown) + (f"; and {more} more" if more else "")
        raise PlanError(message, errors, code="invalid_parameters")
    return ArgvRequest(
        tuple(ids.get("--datasetIds", ())),
        tuple(ids.get("--datafileIds", ())),
        {k: v[0] if len(v) == 1 else v for k, v in values.items()},
    )


def absent_values(options: Sequence[JobOption], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` completed with what the form sends for a field left empty or unticked,
    for the options an argument list did not mention: an unticked checkbox, an empty
    text or number, the radio choice without an argument. Where the form cannot leave
    a field out (an enumeration without an empty value, a radio group whose choices all
    have an argument) the form's default stays, as it is filled in on the form."""
    out = dict(given)
    groups: dict[str, list[JobOption]] = {}
    for o in options:
        if o.is_radio:
            groups.setdefault(o.group_name, []).append(o)
        elif o.key in out or not o.program_parameter:
            continue
        elif o.is_checkbox:
            out[o.key] = False
        elif o.type != "enumeration" or "" in o.values:
            out[o.key] = ""
    for group, members in groups.items():
        silent = [m.name for m in members if not m.program_parameter]
        if group not in out and silent:
            default = default_values(members)[group]
            out[group] = default if default in silent else silent[0]
    return out


def parameter_of(jt: JobType, key: str) -> str:
    """The argument(s) that set option ``key`` (an option or radio group name), for
    messages to clients that speak in arguments."""
    pps = [o.program_parameter for o in jt.options if o.key == key and o.program_parameter]
    return " / ".join(dict.fromkeys(pps)) or key


def argv_fields(jt: JobType, fields: Mapping[str, str]) -> dict[str, str]:
    """:class:`PlanError` fields keyed by option name, keyed (and worded) by the
    arguments instead: ``--index (Index): must be at most 10``."""
    out = {}
    for key, message in fields.items():
        pp = parameter_of(jt, key)
        name = f"{pp} ({key})" if pp != key else key
        out[name] = f"{name}: {message.removeprefix(f'{key}: ')}"
    return out


# --- splitting ------------------------------------------------------------------------


def choice_needed(jt: JobType, sel: Selection) -> str | None:
    """What the user must decide before submitting: 'confirm' (N jobs of a
    non-multiple type), 'mode' (one job or one per input), or None."""
    if sel.size <= 1 or jt.interactive:
        return None
    if not jt.multiple:
        return "confirm"
    if jt.force_single_job:
        return None
    return "mode"


def resolve_mode(jt: JobType, sel: Selection, mode: str | None, confirmed: bool) -> str:
    need = choice_needed(jt, sel)
    if need is None:
        return "single"
    if need == "confirm":
        if not confirmed and mode != "each":
            raise PlanError(
                f"confirm that you intend to run {sel.size} {jt.name!r} jobs, one per "
                "selected dataset or datafile",
                code="confirmation_required",
            )
        return "each"
    if mode not in ("single", "each"):
        raise PlanError(
            f"choose whether to submit one job for all {sel.size} inputs or {sel.size} jobs, one per input",
            code="mode_required",
        )
    return mode


def plan(
    jt: JobType,
    sel: Selection,
    submitted: Mapping[str, Any],
    *,
    mode: str | None = None,
    confirmed: bool = False,
    strict: bool = False,
    icat_url: str = "",
    ids_url: str = "",
    from_argv: bool = False,
    max_length: int = MAX_VALUE_LENGTH,
) -> Plan:
    """Validate everything and return the jobs to create; raise :class:`PlanError`.
    With ``from_argv`` (values read by :func:`parse_argv`), an option not given is what
    the form sends when its field is left empty (:func:`absent_values`), not its default."""
    why = incompatibility(jt, sel)
    if why:
        raise PlanError(f"{jt.name}: {why}", code="incompatible")
    shown = visible_options(jt, sel)
    if from_argv:
        submitted = absent_values(shown, submitted)
    values = validate(shown, submitted, strict=strict, all_options=jt.options, max_length=max_length)
    chosen = resolve_mode(jt, sel, mode, confirmed)
    why = inputs_problem(jt, sel, chosen)
    if why:  # at the job-count choice when the other choice would do
        raise PlanError(why, {"mode": why} if len(possible_modes(jt, sel)) > 1 else None, code="wrong_inputs")
    opts = option_args(shown, values)
    if chosen == "single":
        inputs = [(sel.dataset_ids, sel.datafile_ids)]
    else:
        inputs = [((i,), ()) for i in sel.dataset_ids] + [((), (i,)) for i in sel.datafile_ids]
    jobs = tuple(JobPlan(ds, df, build_args(jt, ds, df, opts, icat_url, ids_url)) for ds, df in inputs)
    return Plan(jt, chosen, values, jobs)

"""The ``ijp`` command: the portal's /api/v1 from a terminal or a script.

    ijp login --url https://portal.example.org db username alice password -
    ijp datasets --type confocal
    ijp submit "Test Options" --dataset 27 --dataset 28 --each --option Index=3 --tag run-7
    ijp status 12 --watch
    ijp output 12 --follow
    ijp outputs 12
    ijp output 12 results/summary.csv -o summary.csv
    ijp download 4711 4712 -o data/      ijp download --dataset 27 -o ds27.zip
    ijp mkdataset LMF-2026-003 my-scan --type confocal
    ijp upload 27 scan1.tif scan2.tif
    ijp connect 13          ijp end 13      (an interactive job's desktop)

The server URL is kept in ``$XDG_CONFIG_HOME/ijp/config`` (``~/.config/ijp``; the
directory can be set with ``IJP_CONFIG_DIR``, the URL with ``IJP_URL``) and the token
in ``token`` next to it, readable by you only (mode 0600). Output is for people; with
``--json`` it is the API's JSON, for scripts. Errors are one line on stderr, and the exit
status says what happened (see EXIT below).
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import click

# exit statuses
OK, FAILED, USAGE, UNAUTHENTICATED, NOT_FOUND, CONFLICT, UNAVAILABLE, JOB_FAILED = 0, 1, 2, 3, 4, 5, 6, 7
EXIT = """Exit status: 0 done; 1 refused (bad input); 2 bad usage; 3 not logged in;
4 no such job, dataset or job type (or not yours); 5 conflict (e.g. cancelling an ended
job); 6 the portal or the catalog cannot be reached; 7 a watched job ended Failed or
Cancelled."""
BY_STATUS = {400: FAILED, 401: UNAUTHENTICATED, 403: FAILED, 404: NOT_FOUND, 409: CONFLICT, 422: FAILED}
ENDED = ("Completed", "Failed", "Cancelled")


class Failure(click.ClickException):
    """One line on stderr, and an exit status that says what went wrong."""

    def __init__(self, message: str, exit_code: int = FAILED):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"ijp: {self.message}", err=True)


# --- configuration and the token ---------------------------------------------------------


def config_dir() -> Path:
    if os.environ.get("IJP_CONFIG_DIR"):
        return Path(os.environ["IJP_CONFIG_DIR"])
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "ijp"


def _config() -> configparser.ConfigParser:
    cp = configparser.ConfigParser()
    cp.read(config_dir() / "config")
    return cp


def server_url() -> str:
    url = os.environ.get("IJP_URL") or _config().get("ijp", "url", fallback="")
    if not url:
        raise Failure("no portal URL yet: ijp login --url https://your.portal ...", USAGE)
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise Failure(f"the portal URL must start with https:// (or http://), not {url!r}", USAGE)
    return url.rstrip("/")


def _save_url(url: str) -> None:
    cp = _config()
    if not cp.has_section("ijp"):
        cp.add_section("ijp")
    cp.set("ijp", "url", url.rstrip("/"))
    _private_dir()
    with open(config_dir() / "config", "w") as fh:
        cp.write(fh)


def _private_dir() -> Path:
    d = config_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _token_file() -> Path:
    return config_dir() / "token"


def _save_token(url: str, token: str, user: str) -> None:
    path = _private_dir() / "token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file was there before
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "token": token, "user": user}, fh)


def _token(url: str) -> str:
    try:
        saved = json.loads(_token_file().read_text())
    except (OSError, ValueError):
        saved = {}
    if saved.get("url") != url or not saved.get("token"):
        raise Failure(
            f"not logged in to {url}: ijp login AUTHENTICATOR username NAME password -", UNAUTHENTICATED
        )
    return saved["token"]


# --- talking to the portal -----------------------------------------------------------------


class Api:
    def __init__(self, url: str, token: str | None):
        self.url, self.token = url, token

    def call(self, method: str, path: str, body=None, query=None):
        url = f"{self.url}/api/v1{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v not in (None, "")})
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http(s), checked)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (http(s), checked)
                raw = resp.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raise _refusal(e, logged_in=self.token is not None, url=self.url) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise Failure(f"cannot reach the portal at {self.url}: {reason}", UNAVAILABLE) from None


def _refusal(e: urllib.error.HTTPError, logged_in: bool, url: str = "") -> Failure:
    try:
        body = json.loads(e.read())
        message = body["message"]
    except (ValueError, KeyError, TypeError):
        body, message = {}, f"the portal answered {e.code} {e.reason}"
        if e.code == 404:  # not the API's own answer: most likely the URL lacks the portal's path
            message = (f"there is no ijpweb API at {url}/api/v1 ({message}): give the portal's URL "
                       "with its path, e.g. https://host/ijp")  # fmt: skip
    fields = body.get("fields") or {}
    extra = [v if v.startswith(f"{k}:") else f"{k}: {v}" for k, v in fields.items() if v not in message]
    if extra:
        message += " (" + "; ".join(extra) + ")"
    if logged_in and e.code == 401 and body.get("code") in ("unauthenticated", "session_expired"):
        message += "; log in again with ijp login"
    return Failure(message, BY_STATUS.get(e.code, UNAVAILABLE if e.code >= 500 else FAILED))


def _api() -> Api:
    url = server_url()
    return Api(url, _token(url))


def _takes(jt: dict) -> str:
    kinds = [k for k in ("datasets", "datafiles") if jt["accepts" + k.capitalize()]]
    return "/".join(kinds) or "nothing"


def _print_json(value) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def _table(rows: list[list], headers: list[str]) -> None:
    cells = [headers] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _when(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] if iso else ""


json_flag = click.option("--json", "as_json", is_flag=True, help="print the API's JSON, for scripts")


# --- commands ------------------------------------------------------------------------------


@click.group(epilog=EXIT, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Run the facility's analysis programs on your datasets, through the ICAT Job Portal."""


@main.command()
@click.option("--url", help="the portal, e.g. https://portal.example.org (remembered)")
@click.argument("authenticator")
@click.argument("credentials", nargs=-1)
@json_flag
def login(url, authenticator, credentials, as_json):
    """Log in: ijp login db username alice password -   (a value of - is asked for, unseen)."""
    if len(credentials) % 2:
        raise Failure("credentials come in pairs: NAME VALUE ...", USAGE)
    pairs = dict(zip(credentials[::2], credentials[1::2], strict=True))
    for name, value in pairs.items():
        if value == "-" and sys.stdin.isatty():
            pairs[name] = click.prompt(name.capitalize(), hide_input=True, err=True)
        elif value == "-":  # piped in: one line of standard input
            pairs[name] = sys.stdin.readline().rstrip("\n")
    if "username" not in pairs or "password" not in pairs:
        raise Failure("give username NAME and password VALUE (or -)", USAGE)
    if url:
        _save_url(url)
    base = server_url()
    got = Api(base, None).call("POST", "/session", {"authenticator": authenticator, **pairs})
    _save_token(base, got["token"], got["user"])
    if as_json:
        _print_json({"user": got["user"], "expires_at": got["expires_at"], "url": base})
    else:
        click.echo(f"Logged in to {base} as {got['user']} until {_when(got['expires_at'])} UTC.")


@main.command()
@json_flag
def session(as_json):
    """Who you are logged in as, where, and until when."""
    api = _api()
    me = api.call("GET", "/session")
    if as_json:
        _print_json(me | {"url": api.url})
    else:
        staff = " (staff)" if me["staff"] else ""
        click.echo(f"User {me['user']}{staff} at {api.url}, logged in until {_when(me['expires_at'])} UTC.")


@main.command()
def logout():
    """Revoke your token and forget it."""
    url = server_url()
    try:
        Api(url, _token(url)).call("DELETE", "/session")
    finally:
        _token_file().unlink(missing_ok=True)
    click.echo(f"Logged out of {url}.")


@main.command()
@click.argument("name", required=False)
@json_flag
def jobtype(name, as_json):
    """The job types, or one with its options."""
    api = _api()
    if name is None:
        types = api.call("GET", "/jobtypes")["jobtypes"]
        if as_json:
            return _print_json(types)
        return _table([[t["name"], t["type"], _takes(t), "yes" if t["multiple"] else "no"] for t in types],
                      ["NAME", "TYPE", "TAKES", "MANY INPUTS"])  # fmt: skip
    jt = api.call("GET", f"/jobtypes/{urllib.parse.quote(name, safe='')}")
    if as_json:
        return _print_json(jt)
    click.echo(f"{jt['name']}: runs {jt['executable']} ({jt['type']})")
    if jt.get("interactive"):
        click.echo("  an interactive job type: its program runs on a desktop you open with ijp connect JOB")
    if jt.get("description"):
        click.echo(f"  {jt['description']}")
    if jt.get("inputs"):
        from .jobtypes import InputsRule

        bounds = jt["inputs"]
        rule = InputsRule(bounds.get("minDatasets"), bounds.get("maxDatasets"),
                          bounds.get("minDatafiles"), bounds.get("maxDatafiles"))  # fmt: skip
        click.echo(f"  each job needs {rule.needs()}")
    click.echo(f"  dataset types: {', '.join(jt['datasetTypes']) or 'any'}")
    for o in jt["jobOptions"]:
        bits = [o["type"]]
        if o.get("groupName"):
            bits.append(f"one of group {o['groupName']!r}")
        if o["values"]:
            bits.append("values " + "|".join(o["values"]))
        for k, label in (
            ("defaultValue", "default"),
            ("minValue", "min"),
            ("maxValue", "max"),
            ("condition", "if"),
        ):
            if o.get(k):
                bits.append(f"{label} {o[k]}")
        click.echo(
            f"  --option {o['name']!r}: {', '.join(bits)}" + (f" — {o['tip']}" if o.get("tip") else "")
        )


def _page_note(found: dict, what: str, again: str) -> None:
    """The count, the page's number and how to ask for the next page (on stderr)."""
    total = f"{found['total']:,}" if found["total_exact"] else f"more than {found['total']:,}"
    note = f"{total} {what}, page {found['page']}."
    if found.get("per_page_capped"):
        note += f" (at most {found['per_page']} per page)"
    click.echo(note, err=True)
    if found["next"]:
        click.echo(f"next page: {again} --cursor {found['next']}", err=True)


@main.command()
@click.option("--type", "type_name", help="dataset type")
@click.option("--investigation", help="investigation name")
@click.option("--name", help="part of the dataset name")
@click.option("--cursor", help="the next (or previous) page of the same search, as the last page said")
@click.option("--per-page", type=int, default=25, show_default=True)
@json_flag
def datasets(type_name, investigation, name, cursor, per_page, as_json):
    """Search the datasets you can see (by investigation, then name)."""
    query = {"type": type_name, "investigation": investigation, "name": name, "cursor": cursor,
             "per_page": per_page}  # fmt: skip
    found = _api().call("GET", "/datasets", query=query)
    if as_json:
        return _print_json(found)
    _table([[d["id"], d["name"], d["type"], d["investigation"], d["datafile_count"]] for d in found["datasets"]],
           ["ID", "NAME", "TYPE", "INVESTIGATION", "FILES"])  # fmt: skip
    again = "ijp datasets" + "".join(
        f" --{k} {shlex.quote(v)}"
        for k, v in (("type", type_name), ("investigation", investigation), ("name", name))
        if v
    )
    _page_note(found, "dataset(s)", again)


@main.command()
@click.argument("dataset_id", type=int)
@click.option("--name", help="part of the datafile name")
@click.option("--cursor", help="the next (or previous) page, as the last page said")
@click.option("--per-page", type=int, default=100, show_default=True)
@click.option("--all", "every", is_flag=True, help="every page, one after the other")
@json_flag
def datafiles(dataset_id, name, cursor, per_page, every, as_json):
    """A dataset's datafiles (those you may read), by name, a page at a time."""
    api = _api()
    query = {"file": name, "cursor": cursor, "per_page": per_page}
    while True:
        found = api.call("GET", f"/datasets/{dataset_id}/datafiles", query=query)
        if as_json:
            _print_json(found)
        else:
            _table([[f["id"], f["name"], f["format"], f["size"]] for f in found["datafiles"]],
                   ["ID", "NAME", "FORMAT", "SIZE"])  # fmt: skip
        if not every or not found["next"]:
            break
        query["cursor"] = found["next"]
    if not as_json:
        again = f"ijp datafiles {dataset_id}" + (f" --name {shlex.quote(name)}" if name else "")
        _page_note(found, "datafile(s)", again)


@main.command()
@click.argument("jobtype_name", metavar="JOBTYPE", required=False)
@click.option("--dataset", "datasets_", type=int, multiple=True, help="a dataset id (repeat for more)")
@click.option("--datafile", "datafiles_", type=int, multiple=True, help="a datafile id (repeat for more)")
@click.option("--option", "options", multiple=True, metavar="NAME=VALUE", help="an option value (repeat)")
@click.option("--single", "mode", flag_value="single", help="one job for all inputs")
@click.option("--each", "mode", flag_value="each", help="one job per input")
@click.option("--tag", "tags", multiple=True, help="a tag for the jobs (repeat)")
@click.option("--like", type=int, help="start from what submitted this job of yours; the rest changes it")
@click.option("--no-wait", is_flag=True, help="do not wait until the jobs are with the batch system")
@click.option(
    "--geometry", metavar="WxH", help="an interactive job's desktop size, e.g. 1920x1080 (1280x800)"
)
@json_flag
def submit(jobtype_name, datasets_, datafiles_, options, mode, tags, like, no_wait, geometry, as_json):
    """Submit one job, or one per input (--each)."""
    api = _api()
    body: dict = {}
    if like is not None:
        body["like"] = like
        before = api.call("GET", f"/jobs/{like}")
        jobtype_name = jobtype_name or before["job_type"]
        datasets_ = datasets_ or tuple(before["dataset_ids"])
        datafiles_ = datafiles_ or tuple(before["datafile_ids"])
    elif not jobtype_name:
        raise Failure("name the job type (see ijp jobtype), or give --like JOB", USAGE)
    body["job_type"] = jobtype_name
    if datasets_:
        body["datasets"] = list(datasets_)
    if datafiles_:
        body["datafiles"] = list(datafiles_)
    if options:
        body["options"] = _option_values(options)
    if tags:
        body["tags"] = list(tags)
    if mode:
        body["mode"] = mode
    if geometry:
        body["geometry"] = geometry
    inputs = len(datasets_) + len(datafiles_)
    offer = api.call("GET", f"/jobtypes/{urllib.parse.quote(jobtype_name, safe='')}/options",
                     query={"datasets": ",".join(map(str, datasets_)), "datafiles": ",".join(map(str, datafiles_))})  # fmt: skip
    if not offer["fits"]:
        raise Failure(f"{jobtype_name}: {offer['why_not']}")
    if offer["choice"] == "confirm":
        if mode == "single":
            raise Failure(f"{jobtype_name!r} takes one input per job: use --each to run {inputs} jobs")
        if mode != "each":
            raise Failure(
                f"{jobtype_name!r} takes one input per job: add --each to confirm {inputs} jobs", USAGE
            )
        body["confirm"] = True
    elif offer["choice"] == "mode" and not mode and like is None:
        raise Failure(f"choose --single (one job for all {inputs} inputs) or --each ({inputs} jobs)", USAGE)
    count = inputs if body.get("mode") == "each" or offer["choice"] == "confirm" else 1
    if not as_json:
        click.echo(f"Submitting {count} {jobtype_name!r} job{'s' if count != 1 else ''}...", err=True)
    got = api.call("POST", "/submissions", body)
    jobs = got["jobs"]
    if not no_wait:
        jobs = _wait_until_handed_over(api, got["submission"], len(jobs), show=not as_json)
    if as_json:
        return _print_json(got | {"jobs": jobs})
    ids = " ".join(str(j["id"]) for j in jobs)
    click.echo(
        f"Submitted {len(jobs)} job{'s' if len(jobs) != 1 else ''} (submission {got['submission']}): {ids}"
    )
    if any(j.get("interactive") for j in jobs):
        click.echo(f"Open the desktop with: ijp connect {jobs[0]['id']}", err=True)


def _option_values(options) -> dict:
    values: dict = {}
    for item in options:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise Failure(f"--option {item!r}: write NAME=VALUE", USAGE)
        if name in values:  # a repeated name gives a list (options that take several values)
            values[name] = [*([values[name]] if isinstance(values[name], str) else values[name]), value]
        else:
            values[name] = value
    return values


def _wait_until_handed_over(api: Api, submission: int, total: int, show: bool, timeout: float = 600) -> list:
    """Poll until no job of the submission is still being handed to the batch system; a
    progress bar (on stderr) when there are many."""
    deadline = time.monotonic() + timeout
    bar = (
        click.progressbar(length=total, label="handing jobs to the batch system", file=sys.stderr)
        if show and total > 1
        else None
    )
    done_before = 0
    try:
        while True:
            jobs = _all_jobs(api, {"submission": submission})
            done = sum(j["status"] != "Submitting" for j in jobs)
            if bar is not None:
                bar.update(done - done_before)
            done_before = done
            if done == total or time.monotonic() > deadline:
                return sorted(jobs, key=lambda j: j["id"])
            time.sleep(0.5)
    finally:
        if bar is not None:
            bar.render_finish()


def _all_jobs(api: Api, query: dict) -> list:
    """Every job of the list, newest first: its pages of 200, following each page's next cursor."""
    jobs, cursor = [], None
    while True:
        got = api.call("GET", "/jobs", query=query | {"per_page": 200, "cursor": cursor})
        jobs += got["jobs"]
        cursor = got["next"]
        if cursor is None:
            return jobs


def _job_line(j: dict) -> list:
    status = j["status"] + (f" ({j['exit_code']})" if j["exit_code"] not in (None, 0) else "")
    return [j["id"], j["job_type"], _when(j["submitted_at"]), status, " ".join(j["tags"])]


HEAD = ["ID", "JOB TYPE", "SUBMITTED (UTC)", "STATUS", "TAGS"]


@main.command()
@click.argument("job_id", type=int, required=False)
@click.option("--watch", is_flag=True, help="keep going until the job (or every listed job) has ended")
@click.option("--status", "status_", help="only jobs with this status (or 'live')")
@click.option("--type", "job_type", help="only jobs of this job type")
@click.option("--tag", help="only jobs with this tag")
@click.option(
    "--interval", type=float, default=2.0, show_default=True, help="seconds between looks with --watch"
)
@json_flag
@click.pass_context
def status(ctx, job_id, watch, status_, job_type, tag, interval, as_json):
    """Your jobs (newest first), or one job in detail."""
    api = _api()
    if job_id is None:
        _status_list(api, {"status": status_, "job_type": job_type, "tag": tag}, watch, interval, as_json)
    elif watch:
        if _watch_job(api, job_id, interval, as_json) != "Completed":
            ctx.exit(JOB_FAILED)
    elif as_json:
        _print_json(api.call("GET", f"/jobs/{job_id}"))
    else:
        _show_job(api.call("GET", f"/jobs/{job_id}"))


def _status_list(api: Api, query: dict, watch: bool, interval: float, as_json: bool) -> None:
    """The table (or JSON); with ``watch``, then a line per change until every job has ended."""
    jobs = _all_jobs(api, query)
    if as_json:
        if not watch:
            return _print_json(jobs)
        for j in jobs:
            click.echo(json.dumps(j))
    else:
        _table([_job_line(j) for j in jobs], HEAD)
    seen = {j["id"]: j["status"] for j in jobs}
    while watch and not all(status in ENDED for status in seen.values()):
        time.sleep(interval)
        jobs = _all_jobs(api, query)
        for j in jobs:
            if seen.get(j["id"]) != j["status"]:
                click.echo(json.dumps(j) if as_json else "  ".join(str(c) for c in _job_line(j)))
        seen = {j["id"]: j["status"] for j in jobs}


def _watch_job(api: Api, job_id: int, interval: float, as_json: bool) -> str:
    """A line per status change until the job has ended; returns how it ended."""
    last = None
    while True:
        j = api.call("GET", f"/jobs/{job_id}")
        if j["status"] != last:
            reason = f" — {j['reason']}" if j["reason"] else ""
            line = f"{time.strftime('%H:%M:%S')}  job {j['id']}  {j['status']}{reason}"
            click.echo(json.dumps(j) if as_json else line)
            last = j["status"]
        if j["status"] in ENDED:
            return j["status"]
        time.sleep(interval)


def _show_job(j: dict) -> None:
    rows = [
        ("Job", f"{j['id']} ({j['job_type']})"),
        ("Status", j["status"] + (f" — {j['reason']}" if j["reason"] else "")),
        ("Exit code", j["exit_code"]),
        ("Datasets", " ".join(map(str, j["dataset_ids"]))),
        ("Datafiles", " ".join(map(str, j["datafile_ids"]))),
        ("Options", ", ".join(f"{k}={v}" for k, v in j["options"].items())),
        ("Tags", " ".join(j["tags"])),
        ("Submitted", _when(j["submitted_at"])),
        ("Started", _when(j["started_at"])),
        ("Finished", _when(j["finished_at"])),
        ("Queued for", _seconds(j["queue_seconds"])),
        ("Ran for", _seconds(j["wall_seconds"])),
        ("Backend", f"{j['backend']} {j['backend_job_id'] or ''}".strip()),
        ("Ran on", f"{j['nodes']} node(s) {j['hosts'] or ''}, {j['cores']} core(s)" if j["nodes"] else ""),
        ("Desktop", _desktop_text(j.get("interactive"))),
    ]
    for k, v in rows:
        if v not in (None, ""):
            click.echo(f"{k + ':':12} {v}")


def _desktop_text(desktop: dict | None) -> str:
    if not desktop:
        return ""
    return f"{desktop['state']} — {desktop['url']}" if desktop["state"] != "ended" else "ended"


def _inputs_text(j: dict) -> str:
    """A job's inputs by name (its ids where no name was kept), the first two and "+ N more"."""
    inputs = j.get("inputs") or {}
    names = [d["name"] or f"dataset {d['id']}" for d in inputs.get("datasets", [])]
    names += [f["name"] or f"datafile {f['id']}" for f in inputs.get("datafiles", [])]
    return ", ".join(names[:2]) + (f" + {len(names) - 2} more" if len(names) > 2 else "")


def _stream_to(api: Api, path: str, query: dict, out) -> None:
    """Copy the answer of GET ``path`` to ``out`` (bytes) as it comes: a file of any size."""
    url = f"{api.url}/api/v1{path}?" + urllib.parse.urlencode({k: v for k, v in query.items() if v})
    req = urllib.request.Request(url)  # noqa: S310 (http(s), checked)
    if api.token:
        req.add_header("Authorization", f"Bearer {api.token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (http(s), checked)
            while chunk := resp.read(65536):
                out.write(chunk)
    except urllib.error.HTTPError as e:
        raise _refusal(e, logged_in=api.token is not None, url=api.url) from None
    except (urllib.error.URLError, OSError) as e:
        raise Failure(
            f"cannot reach the portal at {api.url}: {getattr(e, 'reason', e)}", UNAVAILABLE
        ) from None


JOBS_HEAD = ["ID", "JOB TYPE", "STATUS", "SUBMITTED (UTC)", "INPUTS", "TAGS"]


@main.command()
@click.option("--status", "status_", help="only jobs with this status (or 'live')")
@click.option("--type", "job_type", help="only jobs of this job type")
@click.option("--tag", help="only jobs with this tag")
@click.option("--submission", type=int, help="only the jobs of this submission")
@click.option("--since", help="only jobs submitted at or after this ISO 8601 date or time (UTC)")
@click.option("--until", help="only jobs submitted before this ISO 8601 date or time (UTC)")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
    help="csv and json: every job of the list as one file, streamed from the portal",
)  # fmt: skip
@click.option(
    "-o", "--output", "out", type=click.Path(dir_okay=False, writable=True), help="write to this file"
)
def jobs(status_, job_type, tag, submission, since, until, fmt, out):
    """Your jobs, newest first, with their inputs by name; or the list as CSV or JSON."""
    api = _api()
    query = {"status": status_, "job_type": job_type, "tag": tag, "submission": submission, "since": since,
             "until": until}  # fmt: skip
    if fmt in ("csv", "json"):
        if out:
            with open(out, "wb") as f:
                _stream_to(api, "/jobs/export", query | {"format": fmt}, f)
        else:
            _stream_to(api, "/jobs/export", query | {"format": fmt}, click.get_binary_stream("stdout"))
        return
    rows = [[j["id"], j["job_type"], j["status"] + (f" ({j['exit_code']})" if j["exit_code"] not in (None, 0) else ""),
             _when(j["submitted_at"]), _inputs_text(j), " ".join(j["tags"])] for j in _all_jobs(api, query)]  # fmt: skip
    if out:
        with open(out, "w", encoding="utf-8") as f, contextlib.redirect_stdout(f):
            _table(rows, JOBS_HEAD)
    else:
        _table(rows, JOBS_HEAD)


def _seconds(s: float | None) -> str:
    if s is None:
        return ""
    m, sec = divmod(round(s, 1), 60)
    return f"{int(m)} min {sec:.1f} s" if m else f"{sec:.1f} s"


@main.command()
@click.argument("job_id", type=int)
@click.argument("name", required=False)
@click.option("-e", "--error", is_flag=True, help="stderr instead of stdout")
@click.option("-f", "--follow", is_flag=True, help="keep printing as the job writes, until it ends")
@click.option("--interval", type=float, default=1.0, show_default=True)
@click.option("--all", "all_", is_flag=True, help="all the job's output files, as one zip")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, writable=True),
              help="write the output file (or the zip) to this file")  # fmt: skip
def output(job_id, name, error, follow, interval, all_, out):
    """A job's output (stdout), or its errors (-e); or one of its output files by NAME (as
    `ijp outputs` lists it), or all of them as a zip (--all), to stdout or to -o FILE."""
    api = _api()
    if name is not None or all_:
        if error or follow:
            raise Failure("-e and --follow are for the job's stdout and stderr, not its output files", USAGE)
        if name is not None and all_:
            raise Failure("give a NAME or --all, not both", USAGE)
        path, query = (
            (f"/jobs/{job_id}/outputs.zip", {}) if all_ else (f"/jobs/{job_id}/file", {"name": name})
        )
        _download(api, path, query, out, zip_=all_)
        return
    if out:
        raise Failure(
            "-o is for an output file (NAME) or --all; redirect stdout to save the job's output", USAGE
        )
    stream, offset = ("stderr" if error else "stdout"), 0
    while True:
        chunk = api.call("GET", f"/jobs/{job_id}/output/{stream}", query={"offset": offset, "limit": 1 << 20})
        if chunk["text"]:
            click.echo(chunk["text"], nl=False)
        moved = chunk["next_offset"] != offset
        offset = chunk["next_offset"]
        if chunk["complete"] or (not follow and not moved):
            return
        if not moved:
            time.sleep(interval)


def _download(api: Api, path: str, query: dict, out: str | None, zip_: bool) -> None:
    """Stream a file of any size to ``out`` (removed again if the download fails) or to
    stdout (a zip is not written to a terminal)."""
    if not out:
        stdout = click.get_binary_stream("stdout")
        if zip_ and stdout.isatty():
            raise Failure("a zip is not for the terminal: give -o FILE (or redirect stdout)", USAGE)
        _stream_to(api, path, query, stdout)
        return
    try:
        with open(out, "wb") as f:
            _stream_to(api, path, query, f)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(out)
        raise


@main.command()
@click.argument("job_id", type=int)
@json_flag
def outputs(job_id, as_json):
    """A job's output files (name, size, modified) and its output variables."""
    api = _api()
    job = api.call("GET", f"/jobs/{job_id}")
    if as_json:
        _print_json({k: job[k] for k in ("id", "output_files", "output_files_total", "outputs_zip_url",
                                        "output_vars", "output_vars_skipped", "output_vars_incomplete")})  # fmt: skip
        return
    files = job["output_files"]
    if files:
        _table([[f["name"].replace("\n", "\\n"), f["size"], _when(f["modified"])] for f in files],
               ["NAME", "SIZE (BYTES)", "MODIFIED (UTC)"])  # fmt: skip
        if job["output_files_total"] > len(files):
            click.echo(
                f"... and {job['output_files_total'] - len(files)} more: ijp output {job_id} --all -o FILE.zip"
            )
    else:
        click.echo("No output files." + (" (The job is still running.)" if job["live"] else ""))
    if job["output_vars"]:
        click.echo()
        _table([[k, v] for k, v in job["output_vars"].items()], ["VARIABLE", "VALUE"])
    if job["output_vars_incomplete"]:
        click.echo("(some output variables were left out: at most 1,000 and 64 KB are kept)")


@main.command()
@click.argument("job_ids", type=int, nargs=-1, required=True)
@json_flag
def cancel(job_ids, as_json):
    """Cancel jobs that have not ended."""
    api = _api()
    for i in job_ids:
        j = api.call("POST", f"/jobs/{i}/cancel")
        click.echo(json.dumps(j) if as_json else f"Job {i}: {j['status']}")


@main.command()
@click.argument("job_id", type=int)
@click.option("--no-browser", is_flag=True, help="only print the URL")
@click.option("--wait", "wait_seconds", type=float, default=0, metavar="SECONDS",
              help="wait this long for a starting desktop to be ready")  # fmt: skip
@json_flag
def connect(job_id, no_browser, wait_seconds, as_json):
    """An interactive job's desktop: print its URL and open it in a browser (where one can be
    opened: the desktop shows in a browser where you are logged in to the portal)."""
    api = _api()
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while True:
        j = api.call("GET", f"/jobs/{job_id}")
        desktop = j.get("interactive")
        if not desktop:
            raise Failure(f"job {job_id} is a batch job: it has no desktop", NOT_FOUND)
        if desktop["state"] != "starting" or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if as_json:
        return _print_json(desktop | {"job": job_id})
    if desktop["state"] == "ended":
        raise Failure(f"the desktop of job {job_id} has ended" + (f" ({j['reason']})" if j["reason"] else ""),
                      CONFLICT)  # fmt: skip
    click.echo(desktop["url"])
    if desktop["state"] == "starting":
        click.echo(f"Job {job_id}'s desktop is starting: the page shows it once it is ready.", err=True)
    if not no_browser:
        import webbrowser

        try:
            opened = webbrowser.open(desktop["url"], new=2)
        except webbrowser.Error:
            opened = False
        if not opened:
            click.echo("(no browser could be opened here: open the URL in yours)", err=True)


@main.command()
@click.argument("job_ids", type=int, nargs=-1, required=True)
@json_flag
def end(job_ids, as_json):
    """End interactive jobs' desktop sessions (their programs stop; the jobs complete)."""
    api = _api()
    for i in job_ids:
        j = api.call("POST", f"/jobs/{i}/end")
        click.echo(json.dumps(j) if as_json else f"Job {i}: the session is ending.")


@main.command()
@click.argument("job_ids", type=int, nargs=-1, required=True)
def delete(job_ids):
    """Delete ended jobs and their output."""
    api = _api()
    for i in job_ids:
        api.call("DELETE", f"/jobs/{i}")
        click.echo(f"Job {i} deleted.")


@main.command()
@click.argument("job_id", type=int)
@click.argument("tags", nargs=-1)
@click.option("--add", multiple=True, help="add this tag (repeat)")
@click.option("--remove", multiple=True, help="remove this tag (repeat)")
@json_flag
def tag(job_id, tags, add, remove, as_json):
    """Show a job's tags; set them (ijp tag 12 calib run-7); or --add / --remove some."""
    api = _api()
    current = api.call("GET", f"/jobs/{job_id}")["tags"]
    if tags or add or remove:
        wanted = [t for t in (list(tags) or current) + list(add) if t not in remove]
        current = api.call("PUT", f"/jobs/{job_id}/tags", {"tags": wanted})["tags"]
    if as_json:
        return _print_json(current)
    click.echo(" ".join(current) if current else f"Job {job_id} has no tags.")


def _comment_text(text: str) -> str:
    """The text given, or standard input for ``-`` (a long note from a file)."""
    return sys.stdin.read() if text == "-" else text


def _show_comment(c: dict) -> None:
    edited = f", edited {_when(c['edited_at'])}" if c["edited"] else ""
    click.echo(f"#{c['id']} {c['author']} {_when(c['created_at'])}{edited}")
    for line in c["text"].splitlines() or [""]:
        click.echo(f"    {line}")


@main.command()
@click.argument("job_id", type=int)
@click.argument("text", required=False)
@click.option("--edit", "edit_id", type=int, metavar="ID", help="change comment ID's text to TEXT")
@click.option("--delete", "delete_id", type=int, metavar="ID", help="delete comment ID")
@json_flag
def comment(job_id, text, edit_id, delete_id, as_json):
    """Comment on a job of yours (TEXT, or - to read it from standard input); or --edit ID
    TEXT, or --delete ID. The comments: ijp comments JOB_ID."""
    if edit_id is not None and delete_id is not None:
        raise click.UsageError("give --edit or --delete, not both")
    api = _api()
    if delete_id is not None:
        if text is not None:
            raise click.UsageError("--delete takes no TEXT")
        api.call("DELETE", f"/jobs/{job_id}/comments/{delete_id}")
        click.echo(f"Comment {delete_id} on job {job_id} deleted.")
        return
    if text is None:
        raise click.UsageError("give the comment's TEXT (or - to read it from standard input)")
    body = {"text": _comment_text(text)}
    if edit_id is not None:
        c = api.call("PATCH", f"/jobs/{job_id}/comments/{edit_id}", body)
    else:
        c = api.call("POST", f"/jobs/{job_id}/comments", body)
    if as_json:
        return _print_json(c)
    click.echo(f"Comment {c['id']} on job {job_id} {'changed' if edit_id is not None else 'added'}.")


@main.command()
@click.argument("job_id", type=int)
@json_flag
def comments(job_id, as_json):
    """A job's comments, oldest first."""
    found = _api().call("GET", f"/jobs/{job_id}/comments")
    if as_json:
        return _print_json(found)
    if not found["comments"]:
        click.echo(f"Job {job_id} has no comments.")
    for c in found["comments"]:
        _show_comment(c)


# --- data in and out (IDS, through the portal with your rights) ------------------------------


def _disposition_name(header: str | None) -> str | None:
    """The file name a Content-Disposition gives (RFC 5987 UTF-8 first), or None."""
    if not header:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename*" and value.lower().startswith("utf-8''"):
            return urllib.parse.unquote(value[7:])
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename":
            return value.strip('"')
    return None


def _safe_name(name: str | None, fallback: str) -> str:
    """A name to create in a directory: one plain component (a catalog name is someone's
    text: never a path out of the directory), without invisible or control characters,
    and never a hidden file nor an option: leading dots and dashes become '_', as browsers
    do (another member's ``.bash_profile`` must not land in one's home as that)."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())
    if name in ("", ".", ".."):
        return fallback
    lead = len(name) - len(name.lstrip(".-"))
    return "_" * lead + name[lead:]


class _Progress:
    """Bytes so far, on stderr when it is a terminal (one line, rewritten)."""

    def __init__(self, label: str, total: int | None):
        self.label, self.total, self.done = label, total, 0
        self.shown = sys.stderr.isatty()
        self.last = 0.0

    def add(self, n: int) -> None:
        if not n:
            return  # (the end of the file: its last line was shown)
        self.done += n
        now = time.monotonic()
        if self.shown and (now - self.last > 0.2 or (self.total and self.done >= self.total)):
            self.last = now
            if self.total:
                text = f"{self.label}: {self.done * 100 // max(self.total, 1)}% of {self.total:,} bytes"
            else:
                text = f"{self.label}: {self.done:,} bytes"
            click.echo(f"\r{text}", err=True, nl=False)

    def end(self) -> None:
        if self.shown:
            click.echo("", err=True)


def _save(api: Api, path: str, query: dict, target: Path | None, directory: Path, fallback: str,
          force: bool) -> Path:  # fmt: skip
    """GET ``path`` streamed into ``target`` (or, when None, into ``directory`` under the
    name the portal gives), written under a temporary name and moved into place at the
    end: an existing file is kept unless ``force``; a failed download leaves nothing."""
    url = f"{api.url}/api/v1{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
    req = urllib.request.Request(url)  # noqa: S310 (http(s), checked)
    if api.token:
        req.add_header("Authorization", f"Bearer {api.token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (http(s), checked)
            if target is None:
                given = _disposition_name(resp.headers.get("Content-Disposition"))
                target = directory / _safe_name(given, fallback)
                if given and target.name != given:
                    click.echo(f"note: {given!r} is saved as {target.name!r} (a safe file name)", err=True)
            if target.exists() and not force:
                raise Failure(f"{target} exists: give --force to overwrite it", CONFLICT)
            length = resp.headers.get("Content-Length")
            progress = _Progress(target.name, int(length) if length and length.isdigit() else None)
            tmp = target.with_name(f".{target.name}.part{os.getpid()}")
            try:
                with open(tmp, "xb") as out:
                    while chunk := resp.read(65536):
                        out.write(chunk)
                        progress.add(len(chunk))
                if force:
                    os.replace(tmp, target)
                else:
                    try:
                        os.link(tmp, target)  # (fails if the name was taken meanwhile)
                    except FileExistsError:
                        raise Failure(f"{target} exists: give --force to overwrite it", CONFLICT) from None
            finally:
                progress.end()
                with contextlib.suppress(OSError):
                    tmp.unlink()
    except urllib.error.HTTPError as e:
        raise _refusal(e, logged_in=api.token is not None, url=api.url) from None
    except (urllib.error.URLError, OSError) as e:
        raise Failure(f"cannot download: {getattr(e, 'reason', e)}", UNAVAILABLE) from None
    return target


@main.command()
@click.argument("datafile_ids", nargs=-1, type=int)
@click.option("--dataset", "dataset_id", type=int, help="a whole dataset, as one zip")
@click.option("-o", "--output", "out", type=click.Path(),
              help="a directory to save into (default: here), or the file to write (one datafile or --dataset)")  # fmt: skip
@click.option("--force", is_flag=True, help="overwrite files that exist")
def download(datafile_ids, dataset_id, out, force):
    """Download datafiles (by id, as `ijp datafiles` lists them) or a whole dataset as a
    zip, through IDS with your rights, streamed to disk; an existing file is kept unless
    --force. Progress goes to stderr when it is a terminal."""
    if bool(datafile_ids) == (dataset_id is not None):
        raise Failure("give DATAFILE_ID... or --dataset ID", USAGE)
    api = _api()
    single = dataset_id is not None or len(datafile_ids) == 1
    target, directory = None, Path(out or ".")
    if out and not Path(out).is_dir():
        if not single:
            raise Failure(f"{out} is not a directory: several datafiles go into a directory", USAGE)
        target, directory = Path(out), Path(out).parent
    if not directory.is_dir():
        raise Failure(f"{directory} is not a directory", USAGE)
    if dataset_id is not None:
        saved = _save(
            api, f"/datasets/{dataset_id}/zip", {}, target, directory, f"dataset-{dataset_id}.zip", force
        )
        click.echo(f"{saved}")
        return
    for i in datafile_ids:
        saved = _save(api, f"/datafiles/{i}/content", {}, target, directory, f"datafile-{i}", force)
        click.echo(f"{saved}")


class _Reading:
    """A file read by http.client for a request body, counting what has been sent."""

    def __init__(self, f, progress: _Progress):
        self.f, self.progress = f, progress

    def read(self, size: int = -1) -> bytes:
        chunk = self.f.read(size if size and size > 0 else 65536)
        self.progress.add(len(chunk))
        return chunk


@main.command()
@click.argument("dataset_id", type=int)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--name", help="the datafile's name (one file only; default: the file's own name)")
@json_flag
def upload(dataset_id, files, name, as_json):
    """Upload files into a dataset you may write (IDS put, with your rights), each streamed
    as it is read; progress on stderr when it is a terminal. A name the dataset has already
    is refused (exit 5); the files before it stay uploaded."""
    if name and len(files) > 1:
        raise Failure("--name is for one file", USAGE)
    api = _api()
    stored = []
    for path in files:
        p = Path(path)
        size = p.stat().st_size
        label = name or p.name
        progress = _Progress(label, size)
        query = urllib.parse.urlencode({"name": label})
        with open(p, "rb") as f:
            req = urllib.request.Request(  # noqa: S310 (http(s), checked)
                f"{api.url}/api/v1/datasets/{dataset_id}/datafiles?{query}",
                data=_Reading(f, progress), method="POST",
            )  # fmt: skip
            req.add_header("Content-Type", "application/octet-stream")
            req.add_header("Content-Length", str(size))
            req.add_header("Accept", "application/json")
            if api.token:
                req.add_header("Authorization", f"Bearer {api.token}")
            try:
                with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310 (http(s), checked)
                    got = json.loads(resp.read())
            except urllib.error.HTTPError as e:
                raise _refusal(e, logged_in=api.token is not None, url=api.url) from None
            except (urllib.error.URLError, OSError) as e:
                raise Failure(f"cannot upload {p}: {getattr(e, 'reason', e)}", UNAVAILABLE) from None
            finally:
                progress.end()
        stored += got["datafiles"]
        if not as_json:
            click.echo(f"{p} -> datafile {got['datafiles'][0]['id']} ({label})")
    if as_json:
        _print_json({"dataset": dataset_id, "datafiles": stored})


@main.command()
@click.argument("investigation")
@click.argument("name")
@click.option(
    "--type",
    "type_name",
    required=True,
    help="a dataset type of the facility (a wrong one is refused, listing them)",
)
@click.option("--description", default="", help="what the dataset holds")
@json_flag
def mkdataset(investigation, name, type_name, description, as_json):
    """Create a dataset NAME in INVESTIGATION (its name, or its id) where you may write;
    then `ijp upload` into it."""
    body = {"investigation": int(investigation) if investigation.isdigit() else investigation,
            "name": name, "type": type_name}  # fmt: skip
    if description:
        body["description"] = description
    got = _api().call("POST", "/datasets", body)
    if as_json:
        return _print_json(got)
    click.echo(f"Created dataset {got['id']} ({got['name']}): ijp upload {got['id']} FILE...")


if __name__ == "__main__":  # pragma: no cover
    main()

"""Parse the settings once (see ijpweb.settings) and keep them in the registry."""

import io
import logging

from pyramid.events import NewRequest

from . import passwords
from .proxy import loopback_warnings
from .settings import apply_environment, check_serving, parse, pool_problems

log = logging.getLogger(__name__)


def _close_spooled_body(event):
    """pyramid_retry makes bodies seekable; WebOb spools large ones to a temporary file
    and never closes it. Close it when the request is done."""

    def close(request):
        body = request.environ.get("wsgi.input")
        if isinstance(body, io.BufferedRandom):
            body.close()

    event.request.add_finished_callback(close)


def includeme(config):
    settings = config.get_settings()
    apply_environment(settings)
    settings["ijp"] = parse(settings)
    check_serving(settings["ijp"])  # production: not without the shared login secret
    if settings["ijp"].auth_secret_ephemeral:
        log.warning(
            "no IJP_AUTH_SECRET (auth.secret) is set: logins are signed with a secret made up for "
            "this process, so they end when it stops and work in no other portal process; set "
            "IJP_AUTH_SECRET (production.ini's ijp.deployment = production requires it)"
        )
    # argon2's memory held once per request thread, not once per thread that ever hashed
    passwords.limit_malloc_arenas()
    # a database pool too small for the server's threads (the ini's [server:...] sections)
    threads = int(settings.get("ijp.server_threads") or 0)
    for problem in pool_problems(settings, threads):
        log.warning(problem)
    # a job on this host must never be the trusted proxy (ijpweb.proxy)
    for warning in loopback_warnings(settings["ijp"].trusted_proxies, settings["ijp"].backends):
        log.warning(warning)
    config.add_subscriber(_close_spooled_body, NewRequest)

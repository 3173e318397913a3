"""Parse the settings once (see ijpweb.settings) and keep them in the registry."""

import io

from pyramid.events import NewRequest

from .settings import apply_environment, parse


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
    config.add_subscriber(_close_spooled_body, NewRequest)

"""Interactive jobs' desktops in the browser: the websocket proxy (proxy.py), the RFB
opening it speaks (rfb.py) and its token check (tokens.py). See README "Interactive jobs".
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def start_embedded(registry):
    """``ijp.desktop.proxy = embedded``: the proxy in a daemon thread of this portal process,
    on ``ijp.desktop.listen``; returns it (``.port``, ``.stop()``; also in
    ``registry["ijp.desktop.proxy"]``), or None: external mode, or the port is taken (another
    portal process of this host serves it: one warning naming the setting)."""
    settings = registry.settings["ijp"]
    desktop = settings.desktop
    registry["ijp.desktop.proxy"] = None
    if desktop.proxy != "embedded":
        return None
    from .proxy import from_settings, run_in_thread

    proxy = from_settings(settings, registry["dbengine"], registry["ijp.backends"])
    try:
        running = run_in_thread(proxy, desktop.listen_host, desktop.listen_port)
    except OSError as e:
        log.warning(
            "the desktop proxy cannot listen on %s:%d (ijp.desktop.listen): %s; this process runs none "
            "(another process of the portal may: desktops open only where one listens)",
            desktop.listen_host, desktop.listen_port, e.strerror or e,
        )  # fmt: skip
        return None
    log.info("the desktop proxy listens on %s:%d (ijp.desktop.listen)", desktop.listen_host, running.port)
    registry["ijp.desktop.proxy"] = running
    return running

"""ijpweb: the ICAT Job Portal."""


def main(global_config, **settings):
    """The WSGI application."""
    import os

    from pyramid.config import Configurator

    from .desktop import start_embedded
    from .proxy import Mount

    # what the portal creates -- the database and its WAL, job directories, the file
    # store -- is its own: 0600 files, 0700 directories
    os.umask(0o077)

    # the Unix sockets the portal's processes listen on (their [server:...] sections): no
    # job's sandbox may show them (ijpweb.batch checks at start)
    from .settings import server_sockets, server_threads

    sockets = server_sockets((global_config or {}).get("__file__"))
    if sockets:
        settings = {**settings, "ijp.sockets": "\n".join([settings.get("ijp.sockets", ""), *sockets])}
    # their request threads, which the database pool must serve (config checks it)
    threads = server_threads((global_config or {}).get("__file__"))
    if threads:
        settings = {**settings, "ijp.server_threads": str(threads)}

    with Configurator(settings=settings) as config:
        # settings first: everything below reads the parsed, typed settings
        config.include(".config")
        # the jobs database and the embedded catalog share one engine
        config.include(".models")
        # login, CSRF on every state change, per-user job access
        config.include(".security")
        # Jinja2 templates, their filters and globals
        config.include(".templating")
        # job types, dataset types and the catalog, per request
        config.include(".services")
        # the batch backends
        config.include(".batch")
        # /metrics' registry and the tween that times every request
        config.include(".metrics")
        # the background work (submitter, harvester, session keep-alive, purges)
        config.include(".scheduler")
        # the one Submitter every face submits through (request.submitter)
        config.include(".jobs")
        config.include(".routes")
        # /api/v1 views refuse what their operation does not declare (before the scan)
        config.include(".views.api")
        config.scan(".views", ignore=[".icat", ".ids"])  # (services mounts those two)
    app = config.make_wsgi_app()
    # ijp.desktop.proxy = embedded: interactive jobs' websocket proxy in a thread of this process
    start_embedded(app.registry)
    # at ijp.prefix, believing X-Forwarded-* only from ijp.trusted_proxies, with the
    # security headers on every response (ijpweb.proxy)
    ijp = app.registry.settings["ijp"]
    return Mount(app, ijp.prefix, ijp.trusted_proxies)

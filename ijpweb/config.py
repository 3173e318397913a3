"""Parse the settings once (see ijpweb.settings) and keep them in the registry."""

from .settings import apply_environment, parse


def includeme(config):
    settings = config.get_settings()
    apply_environment(settings)
    settings["ijp"] = parse(settings)

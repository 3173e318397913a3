"""Backends by name, built from the settings."""

from __future__ import annotations

from . import BatchBackend
from .local import from_settings as local_from_settings
from .remote import from_settings as remote_from_settings
from .slurm import from_settings as slurm_from_settings

FACTORIES = {"local": local_from_settings, "slurm": slurm_from_settings, "remote": remote_from_settings}


def backends_from_settings(settings) -> dict[str, BatchBackend]:
    out: dict[str, BatchBackend] = {}
    for name, opts in settings.backends.items():
        kind = opts.get("type", "local")
        if kind not in FACTORIES:
            raise ValueError(f"ijp.batch.{name}.type: unknown backend type {kind!r}")
        out[name] = FACTORIES[kind](name, opts)
    return out

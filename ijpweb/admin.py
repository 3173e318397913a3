"""``ijp-admin``: operator commands that act on the portal's database.

ijp-admin development.ini migrate        # bring the schema to the newest revision
ijp-admin development.ini load-demo      # the demo catalog, if the catalog is empty
ijp-admin development.ini check-jobtypes # report every problem in jobtypes/ and datasettypes/
ijp-admin development.ini load-catalog FILE...  # icatdump YAML or XML files, each in one transaction
ijp-admin development.ini set-password NAME     # the db authenticator's password for db/NAME,
                                                # asked for, or read from stdin; never from argv
ijp-admin development.ini url            # the URL pserve serves the portal at ([server:main] + ijp.prefix)
"""

from __future__ import annotations

import argparse
import os
import sys

import transaction
from pyramid.paster import get_appsettings, setup_logging


def _alembic_config(ini: str):
    from alembic.config import Config

    return Config(ini)


def migrate(ini: str) -> int:
    from alembic import command

    command.upgrade(_alembic_config(ini), "head")
    print("database schema is up to date")
    return 0


def _settings(ini: str) -> dict:
    """The ini's app settings, with the environment's secrets applied."""
    from .settings import apply_environment

    settings = dict(get_appsettings(ini))
    apply_environment(settings)
    return settings


def _engine(ini: str):
    from .models import get_engine

    return get_engine(_settings(ini))


def load_demo(ini: str) -> int:
    from .catalog import demo
    from .catalog.ids import FileStore, server_key
    from .models import get_engine, get_session_factory, get_tm_session
    from .settings import parse

    settings = _settings(ini)
    factory = get_session_factory(get_engine(settings))
    s = parse(settings)
    store = FileStore(s.filestore, server_key(s.ids_key, s.ids_key_file))
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        db = get_tm_session(factory, tm)
        if not demo.is_empty(db):
            print("the catalog already holds a facility; demo data not loaded")
            return 0
        counts = demo.load(db, store)
    print("demo catalog loaded: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def load_catalog(ini: str, files: list[str]) -> int:
    from .catalog.dumpfile import read
    from .catalog.ids import server_key
    from .catalog.importer import Importer
    from .models import get_engine
    from .settings import parse

    if not files:
        print("load-catalog: name the dump file(s) to load", file=sys.stderr)
        return 2
    settings = _settings(ini)
    engine = get_engine(settings)
    s = parse(settings)
    for file in files:
        try:
            objects = read(file)
            with engine.begin() as conn:  # all of the file, or nothing
                # datafile locations are signed with the IDS key (read only if there are some)
                importer = Importer(conn, file, lambda: server_key(s.ids_key, s.ids_key_file))
                importer.load(objects)
        except ValueError as e:  # a DumpError, or no IDS key to sign the dump's locations
            print(f"load-catalog: {e}; nothing was loaded from it", file=sys.stderr)
            return 1
        except OSError as e:
            print(f"load-catalog: {file}: {e.strerror}", file=sys.stderr)
            return 1
        total = sum(importer.counts.values())
        print(f"{file}: loaded {total} object(s)")
        for entity, n in sorted(importer.counts.items()):
            print(f"  {entity:28} {n}")
        for entity, n in sorted(importer.skipped.items()):
            print(f"  {entity:28} {n} skipped (not held by the embedded catalog)")
    return 0


def set_password(ini: str, names: list[str]) -> int:
    import getpass

    from .models import DbCredential, get_session_factory
    from .passwords import hash_password

    if len(names) != 1 or "/" in names[0]:
        print("set-password: give one db user name, without 'db/'", file=sys.stderr)
        return 2
    name = names[0]
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for db/{name}: ")
        if password != getpass.getpass("again: "):
            print("set-password: the two passwords differ; nothing changed", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("set-password: use at least 8 characters; nothing changed", file=sys.stderr)
        return 1
    session = get_session_factory(_engine(ini))()
    with session.begin():
        cred = session.get(DbCredential, name)
        if cred is None:
            session.add(DbCredential(username=name, password_hash=hash_password(password)))
        else:
            cred.password_hash = hash_password(password)
    print(f"password set for db/{name}")
    return 0


def check_jobtypes(ini: str) -> int:
    from .datasettypes import DatasetTypes
    from .jobtypes import JobTypes
    from .settings import parse

    s = parse(_settings(ini))
    cat = JobTypes(s.jobtypes_dir).current()
    problems = [*cat.problems, *DatasetTypes(s.datasettypes_dir).problems]
    print(f"{len(cat.by_name)} job type(s) loaded from {s.jobtypes_dir}")
    for p in problems:
        print(p)
    return 1 if problems else 0


def listen_url(ini: str) -> str:
    """The URL the portal is served at by ``pserve INI``: waitress's ``listen`` (the first
    address; or ``host`` and ``port``) in [server:main], and the ijp.prefix. A wildcard
    address is shown as 127.0.0.1 (it listens there too). A Unix socket (``unix_socket``,
    production.ini's) is shown as Apache names it, ``unix:/run/ijpweb/main.sock|http://localhost/ijp/``
    (curl: ``curl --unix-socket /run/ijpweb/main.sock http://localhost/ijp/``)."""
    import configparser

    from .proxy import parse_prefix

    cp = configparser.ConfigParser(defaults={"here": os.path.dirname(os.path.abspath(ini))}, strict=False)
    cp.read(ini)
    server = cp["server:main"] if cp.has_section("server:main") else {}
    listen = (server.get("listen") or "").split()
    prefix = parse_prefix(_settings(ini).get("ijp.prefix", ""))
    if server.get("unix_socket"):  # (waitress then listens on nothing else)
        return f"unix:{server['unix_socket']}|{server.get('url_scheme', 'http')}://localhost{prefix}/"
    if listen:
        host, _, port = listen[0].rpartition(":")
    else:
        host, port = server.get("host", ""), server.get("port", "8080")  # waitress's defaults: all, 8080
    if host in ("", "*", "::", "[::]") or host.strip("0.") == "":  # all addresses: 127.0.0.1 is one
        host = "127.0.0.1"
    scheme = server.get("url_scheme", "http")
    return f"{scheme}://{host}:{port}{prefix}/"


def url(ini: str) -> int:
    try:
        print(listen_url(ini))
    except ValueError as e:  # a malformed ijp.prefix
        print(f"url: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ijp-admin", description=__doc__.split("\n")[0])
    parser.add_argument("ini", help="the portal's ini file, e.g. development.ini")
    parser.add_argument(
        "command", choices=["migrate", "load-demo", "check-jobtypes", "load-catalog", "set-password", "url"]
    )
    parser.add_argument("args", nargs="*", help="load-catalog: dump files; set-password: a user name")
    args = parser.parse_args(argv)
    os.umask(0o077)  # the database (and its WAL) and the file store: the portal's alone
    if args.command != "url":  # (url prints one line: the ini's logging is not set up for it)
        setup_logging(args.ini)
    if args.command == "load-catalog":
        return load_catalog(args.ini, args.args)
    if args.command == "set-password":
        return set_password(args.ini, args.args)
    commands = {"migrate": migrate, "load-demo": load_demo, "check-jobtypes": check_jobtypes, "url": url}
    return commands[args.command](args.ini)


if __name__ == "__main__":
    sys.exit(main())

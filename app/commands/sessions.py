"""`tinystudio sessions ...`: the studio's saved sessions from a script, optionally as one account (--user).

    tinystudio sessions list [--user NAME] [--json]
    tinystudio sessions show ID [--user NAME] [--json]        # versions, jobs and exports of the session
    tinystudio sessions export ID --out FILE.tinystudio [--user NAME]
    tinystudio sessions delete ID [--user NAME]
    tinystudio sessions give ID NAME                          # to an account (sessions from before accounts)

Without --user the command acts as the server's administrator (it holds the database file) and sees every
session; with --user it sees and changes exactly what that account may in the studio (store.access): another
student's session is "no session with id N", as if it did not exist.
"""
from __future__ import annotations

from app.commands.common import print_json
from app.commands.users import add_db_option, open_db


def add_parser(sub) -> None:
    """The `sessions` command (app/cli.py registers it)."""
    s = sub.add_parser("sessions", help="List, show, export or delete the studio's saved sessions.",
                       description="The studio's saved sessions. With --user NAME, only what that account may "
                                   "see and change (a lab server's rules).")
    ss = s.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")

    def action(name: str, help_: str, fn, with_id: bool = True):
        p = ss.add_parser(name, help=help_, description=help_)
        if with_id:
            p.add_argument("id", type=int, metavar="ID", help="the session's id (see `tinystudio sessions list`)")
        p.add_argument("--user", metavar="NAME", help="act as this account (default: every session)")
        add_db_option(p)
        p.set_defaults(fn=fn)
        return p

    action("list", "List the sessions, newest change first.", cmd_list, with_id=False).add_argument(
        "--json", action="store_true")
    action("show", "Show a session: its versions, jobs and exports.", cmd_show).add_argument(
        "--json", action="store_true")
    action("export", "Write a session to a .tinystudio file.", cmd_export).add_argument(
        "--out", required=True, metavar="FILE.tinystudio")
    action("delete", "Delete a session and everything in it.", cmd_delete)
    g = ss.add_parser("give", help="Give a session to an account (e.g. sessions made before the store had "
                                   "accounts, which only the administrator sees).")
    g.add_argument("id", type=int, metavar="ID")
    g.add_argument("owner", metavar="NAME", help="the account that will own it")
    add_db_option(g)
    g.set_defaults(fn=cmd_give)


def _store(args, store):
    """The store acting as --user (store.access), or the whole store."""
    from store import as_user
    from store.users import find_user

    return as_user(store, find_user(store, args.user)) if args.user else store


def cmd_list(args) -> int:
    from store import list_sessions

    with open_db(args) as store:
        sessions = list_sessions(_store(args, store))
    if args.json:
        return print_json([s.to_json() for s in sessions])
    if not sessions:
        print("no sessions")
    for s in sessions:
        print(f"{s.id:>5}  {s.name}  ({s.model}, {s.version_count} versions, changed {s.updated[:19]})")
    return 0


def cmd_show(args) -> int:
    from store import get_session, list_exports, list_jobs, list_versions

    with open_db(args) as store:
        view = _store(args, store)
        s = get_session(view, args.id)
        versions = list_versions(view, s.id)
        jobs = list_jobs(view, s.id)
        exports = list_exports(view, session_id=s.id)
    if args.json:
        return print_json({"session": s.to_json(), "versions": [v.to_json() for v in versions],
                           "jobs": [j.to_json() for j in jobs], "exports": [e.to_json() for e in exports]})
    print(f"session {s.id}: {s.name} (model {s.model})")
    for v in versions:
        mark = "  (current)" if v.id == s.current_version_id else ""
        print(f"  {v.label:>4}  {v.action:<12} id {v.id}  {v.created[:19]}{mark}")
    for j in jobs:
        print(f"  job {j.id}: {j.kind} {j.status} {j.message}")
    for e in exports:
        print(f"  export {e.id}: version id {e.version_id} for {e.mcu}, {e.bundle_bytes:,} bytes")
    return 0


def cmd_export(args) -> int:
    from store import export_session_file

    with open_db(args) as store:
        path = export_session_file(_store(args, store), args.id, args.out)
    print(f"wrote {path}")
    return 0


def cmd_delete(args) -> int:
    from store import delete_session, get_session

    with open_db(args) as store:
        view = _store(args, store)
        name = get_session(view, args.id).name
        delete_session(view, args.id)
    print(f"deleted session {args.id} ({name})")
    return 0


def cmd_give(args) -> int:
    from store import set_session_owner
    from store.users import find_user

    with open_db(args) as store:
        s = set_session_owner(store, args.id, find_user(store, args.owner))
    print(f"session {s.id} ({s.name}) now belongs to {args.owner}")
    return 0

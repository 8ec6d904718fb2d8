"""`tinystudio users ...`: the accounts and courses of a lab server, for the instructor at the server's console.

    tinystudio users add ada --role student               # asks for the password twice (never on the command line)
    echo "$PW" | tinystudio users add ada --role student --password-stdin
    tinystudio users import roster.csv                    # name,role[,password]; made-up passwords printed once
    tinystudio users list [--json]
    tinystudio users reset-password ada [--password-stdin]
    tinystudio users delete ada [--give-to prof] [--user prof]   # refused while ada owns work, unless --give-to
    tinystudio users rename ada ada.l [--user prof]              # --user: act as that instructor
    tinystudio users course create "TinyML 2026" --instructor prof
    tinystudio users enroll "TinyML 2026" ada bob
    tinystudio users course list [--json]

Whoever runs these holds the database file, so they act as the server's administrator (no login). Once the
store has an account, `tinystudio studio` asks everyone for a login.
"""
from __future__ import annotations

import getpass
import os
import sys

from app.commands.common import print_json
from engine.errors import TinyStudioError


def add_db_option(p) -> None:
    p.add_argument("--db", metavar="PATH", help="DuckDB file (default: in the user's data folder, as `studio`)")


def add_parser(sub) -> None:
    """The `users` command and its subcommands (app/cli.py registers it)."""
    u = sub.add_parser("users", help="Accounts and courses of a lab server (instructors, students).",
                       description="Accounts and courses of a lab server. Once the database has an account, the "
                                   "studio asks for a login, and each student sees only their own work.")
    us = u.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    a = us.add_parser("add", help="Add an account (the password is asked for, or read from stdin).")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--role", required=True, choices=("instructor", "student"))
    a.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add_db_option(a)
    a.set_defaults(fn=cmd_add)
    ls = us.add_parser("list", help="List the accounts and their courses.")
    ls.add_argument("--json", action="store_true")
    add_db_option(ls)
    ls.set_defaults(fn=cmd_list)
    im = us.add_parser("import", help="Add the accounts of a roster CSV (name,role[,password]); all or none.")
    im.add_argument("roster", metavar="ROSTER.csv")
    im.add_argument("--json", action="store_true", help="print the accounts (and made-up passwords) as JSON")
    add_db_option(im)
    im.set_defaults(fn=cmd_import)
    r = us.add_parser("reset-password", help="Set a new password for an account.")
    r.add_argument("name", metavar="NAME")
    r.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add_db_option(r)
    r.set_defaults(fn=cmd_reset)
    d = us.add_parser("delete", help="Delete an account (refused while it owns sessions, unless --give-to).")
    d.add_argument("name", metavar="NAME")
    d.add_argument("--give-to", metavar="OTHER", help="the account that gets the deleted one's sessions, "
                                                     "submissions, challenges and courses")
    add_user_option(d)
    add_db_option(d)
    d.set_defaults(fn=cmd_delete)
    rn = us.add_parser("rename", help="Change an account's login name (its work follows).")
    rn.add_argument("name", metavar="NAME")
    rn.add_argument("new_name", metavar="NEW_NAME")
    add_user_option(rn)
    add_db_option(rn)
    rn.set_defaults(fn=cmd_rename)
    c = us.add_parser("course", help="Courses: an instructor's students, whose work the instructor may see.")
    cs = c.add_subparsers(dest="course_command", required=True, metavar="ACTION")
    cc = cs.add_parser("create", help="Create a course taught by an instructor.")
    cc.add_argument("course", metavar="NAME")
    cc.add_argument("--instructor", required=True, metavar="NAME", help="the instructor's account")
    add_db_option(cc)
    cc.set_defaults(fn=cmd_course_create)
    cl = cs.add_parser("list", help="List the courses and their members.")
    cl.add_argument("--json", action="store_true")
    add_db_option(cl)
    cl.set_defaults(fn=cmd_course_list)
    e = us.add_parser("enroll", help="Enroll accounts in a course (students; an instructor's account co-teaches).")
    e.add_argument("course", metavar="COURSE", help="the course's name or id")
    e.add_argument("names", nargs="+", metavar="NAME")
    add_db_option(e)
    e.set_defaults(fn=cmd_enroll)


def add_user_option(p) -> None:
    p.add_argument("--user", metavar="NAME", help="act as this instructor (their rights are checked as in the "
                                                  "studio); default: the server's administrator")


def acting_as(store, args):
    """The account named by --user (None: the administrator, who holds the database file)."""
    from store.users import find_user

    return None if not getattr(args, "user", None) else find_user(store, args.user)


def open_db(args):
    from store import default_db_path, open_store

    return open_store(os.path.abspath(args.db or default_db_path()))


def read_password(args, prompt: str) -> str:
    """From stdin's first line (--password-stdin) or a terminal prompt (twice); never from the command line."""
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise TinyStudioError("--password-stdin: stdin is empty")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise TinyStudioError("no terminal to ask for the password: pipe it in with --password-stdin")
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} again: ") != first:
        raise TinyStudioError("the two passwords differ; nothing changed")
    return first


def cmd_add(args) -> int:
    from store.users import add_user, check_role, check_user_name

    check_user_name(args.name), check_role(args.role)  # before asking for a password
    password = read_password(args, f"password for {args.name}")
    with open_db(args) as store:
        u = add_user(store, args.name, args.role, password)
    print(f"added {u.role} {u.name} (id {u.id})")
    return 0


def cmd_list(args) -> int:
    from store.users import courses_of, list_users

    with open_db(args) as store:
        users = list_users(store)
        courses = {u.id: [c.name for c in courses_of(store, u)] for u in users}
    if args.json:
        return print_json([{**u.to_json(), "courses": courses[u.id]} for u in users])
    if not users:
        print("no accounts: the studio runs for one user, without a login")
        return 0
    width = max(len(u.name) for u in users)
    for u in users:
        print(f"{u.name:<{width}}  {u.role:<10}  {', '.join(courses[u.id]) or '-'}")
    return 0


def cmd_import(args) -> int:
    from store.users import MAX_ROSTER_BYTES, import_roster

    try:
        if os.path.getsize(args.roster) > MAX_ROSTER_BYTES:
            raise TinyStudioError(f"{args.roster}: over {MAX_ROSTER_BYTES:,} bytes; a roster is a small CSV file")
        with open(args.roster, encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise TinyStudioError(f"{args.roster}: cannot read the roster: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise TinyStudioError(f"{args.roster}: not a UTF-8 text file") from None
    made: dict[str, str] = {}
    with open_db(args) as store:
        try:
            users = import_roster(store, text, made)
        except TinyStudioError as e:
            raise TinyStudioError(f"{args.roster}: {e}") from None
    if args.json:
        return print_json([{**u.to_json(), "password": made.get(u.name)} for u in users])
    print(f"added {len(users)} accounts from {args.roster}")
    if made:  # shown this once: only the hashes are kept
        print("made-up passwords (hand them out now; they are not stored and not shown again):")
        width = max(len(n) for n in made)
        for u in users:
            if u.name in made:
                print(f"  {u.name:<{width}}  {made[u.name]}")
    return 0


def cmd_reset(args) -> int:
    from store.users import check_password, find_user, reset_password

    with open_db(args) as store:
        find_user(store, args.name)  # before asking for a password
        password = check_password(read_password(args, f"new password for {args.name}"))
        reset_password(store, None, args.name, password)
    print(f"password of {args.name} changed")
    return 0


def cmd_delete(args) -> int:
    from store.user_admin import delete_user

    with open_db(args) as store:
        given = delete_user(store, acting_as(store, args), args.name, give_to=args.give_to)
    moved = ", ".join(f"{n} {t}" for t, n in given.items())
    print(f"deleted {args.name}" + (f"; {moved} given to {args.give_to}" if moved else ""))
    return 0


def cmd_rename(args) -> int:
    from store.user_admin import rename_user

    with open_db(args) as store:
        u = rename_user(store, acting_as(store, args), args.name, args.new_name)
    print(f"renamed {args.name} to {u.name}")
    return 0


def cmd_course_create(args) -> int:
    from store.users import create_course, find_user

    with open_db(args) as store:
        cid = create_course(store, find_user(store, args.instructor), args.course)
    print(f"created course {args.course} (id {cid}) taught by {args.instructor}")
    return 0


def cmd_course_list(args) -> int:
    from store.users import courses_of

    with open_db(args) as store:
        courses = courses_of(store)
    if args.json:
        return print_json([c.to_json() for c in courses])
    if not courses:
        print("no courses")
    for c in courses:
        print(f"{c.id}  {c.name}  instructors: {', '.join(c.instructors) or '-'}  "
              f"students: {', '.join(c.students) or '-'}")
    return 0


def cmd_enroll(args) -> int:
    from store.users import enroll, find_course

    with open_db(args) as store:
        cid = find_course(store, args.course)
        with store.transaction():  # all names or none
            for name in args.names:
                enroll(store, None, cid, name)
    print(f"enrolled {', '.join(args.names)} in course {args.course}")
    return 0

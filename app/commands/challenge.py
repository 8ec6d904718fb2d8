"""`tinystudio challenge create FILE.toml | list | show ID | export ID --out FILE.toml | export-grades ID`:
a lab server's challenges from an instructor's scripts. The command runs as the server's administrator on
the database (`--db`, the studio's default otherwise), or with `--user NAME` as that instructor: the store
then checks what they may see and change exactly as on the Instructor page (another instructor's challenge
is "no challenge with id N"). With the studio running, DuckDB's lock refuses it (one line). What it does is
app.labs, as the Instructor page does it."""
from __future__ import annotations

import sys

from app.commands.common import print_json

SUBCOMMANDS = ("create", "list", "show", "export", "export-grades")


def add_parser(sub) -> None:
    """The `challenge` subcommand (app/cli.py registers it)."""
    c = sub.add_parser("challenge", help="Publish and manage teaching-lab challenges on a lab server's database.",
                       description="Publish a challenge (a TOML file with the files it names, or builtin:NAME), "
                                   "list and show challenges, export one back to TOML, export its grades as CSV.")
    cs = c.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_: str):
        a = cs.add_parser(name, help=help_, description=help_)
        a.add_argument("--db", metavar="PATH", help="the lab's DuckDB file (default: the studio's)")
        a.add_argument("--json", action="store_true", help="print JSON")
        a.add_argument("--user", metavar="NAME", help="act as this instructor (default: the server's administrator, "
                                                      "who sees every challenge)")
        a.set_defaults(fn=cmd_challenge)
        return a

    cr = action("create", "Publish a challenge file (or builtin:NAME, one of the labs that ship with TinyStudio).")
    cr.add_argument("file", metavar="FILE.toml|builtin:NAME")
    cr.add_argument("--course", metavar="ID|NAME", help="the course whose students see it (default: every account)")
    cr.add_argument("--owner", metavar="NAME", help="the instructor it belongs to (sees every submission; default: "
                                                   "none, the server's administrator)")
    action("list", "List the published challenges.")
    sh = action("show", "Show a challenge: its settings, instructions and submissions.")
    sh.add_argument("id", type=int, metavar="ID")
    ex = action("export", "Write a challenge back to a TOML file, with the files it names beside it.")
    ex.add_argument("id", type=int, metavar="ID")
    ex.add_argument("--out", required=True, metavar="FILE.toml")
    eg = action("export-grades", "The grades of a challenge as CSV: per student the submission that counts.")
    eg.add_argument("id", type=int, metavar="ID")
    eg.add_argument("--out", metavar="FILE.csv", help="write the CSV here (default: standard output)")


def cmd_challenge(args) -> int:
    from app.commands.studio import default_db_path
    from store import open_store

    store = open_store(args.db or default_db_path())
    try:
        args.acting = _acting(store, args)
        return _ACTIONS[args.action](store, args)
    finally:
        store.close()


def _acting(store, args):
    """The instructor named by --user; None: the administrator."""
    from app.labs import LabError
    from store.users import find_user

    if not args.user:
        return None
    u = find_user(store, args.user)
    if u.role != "instructor":
        raise LabError(f"--user {u.name}: a {u.role}; the challenge command acts as an instructor")
    if getattr(args, "owner", None) is not None:
        raise LabError("--owner is for the administrator; with --user the challenge belongs to that instructor")
    return u


def _create(store, args) -> int:
    from app.labs import publish

    course = None
    if args.course is not None:
        from store.users import find_course

        course = find_course(store, args.course)
    c = publish(store, args.file, user=args.acting, course_id=course, owner=args.owner)
    if args.json:
        return print_json(c.to_json())
    print(f"challenge {c.id}: {c.title} (deadline {c.deadline or 'none'}, {c.counts} submission counts)")
    return 0


def _list(store, args) -> int:
    from store.challenges import list_challenges

    rows = list_challenges(store, user=args.acting)
    if args.json:
        return print_json([c.to_json() for c in rows])
    if not rows:
        print("no challenges; publish one with `tinystudio challenge create FILE.toml|builtin:NAME`")
    for c in rows:
        print(f"{c.id:>4}  {c.title}  (deadline {c.deadline or 'none'}; {c.submissions} submissions)")
    return 0


def _show(store, args) -> int:
    from app.lab_results import history
    from app.labs import load
    from store.challenges import get_challenge

    info = get_challenge(store, args.id, user=args.acting)
    ch = load(store, args.id, user=args.acting)
    subs = history(store, args.id, user=args.acting)
    if args.json:
        return print_json({**info.to_json(), "challenge": {k: v for k, v in ch.to_json().items()
                                                            if k not in ("source", "test_dataset")},
                           "submissions_list": subs})
    print(f"challenge {info.id}: {info.title}")
    print(f"target     {ch.mcu} + {ch.runtime}; data set {_base(ch.dataset)}"
          + (" (hidden test split kept on the server)" if ch.test_dataset else ""))
    print(f"limits     " + (", ".join(f"{k} {v:g}" for k, v in ch.limits.items()) or "the MCU's capacity"))
    print(f"accuracy   {'>= %g' % ch.accuracy_target if ch.accuracy_target else 'not required'}; scoring "
          f"{ch.method}{' ' + ch.formula.text if ch.formula else ''}; the {info.counts} submission counts")
    print(f"deadline   {info.deadline or 'none'}; checks {', '.join(ch.check_names())}")
    print(f"submissions {len(subs)}")
    for s in subs:
        print(f"  #{s['submission']} {s['submitted']} {s['status']}"
              + (f" score {s['score']:g}" if s["score"] is not None else "") + (f" {s['why']}" if s["why"] else ""))
    return 0


def _base(path: str) -> str:
    from pathlib import Path

    return Path(path).name if "/" in path else path


def _export(store, args) -> int:
    from app.labs import export_toml

    written = export_toml(store, args.id, args.out, user=args.acting)
    if args.json:
        return print_json({"written": written})
    print("wrote " + ", ".join(written))
    return 0


def _export_grades(store, args) -> int:
    from app.lab_results import grades_csv
    from app.labs import LabError

    text = grades_csv(store, args.id, user=args.acting)
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        except OSError as e:
            raise LabError(f"--out {args.out}: cannot be written ({e.strerror or e})") from None
        print(f"wrote {args.out} ({text.count(chr(10)) - 1} students)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


_ACTIONS = {"create": _create, "list": _list, "show": _show, "export": _export, "export-grades": _export_grades}

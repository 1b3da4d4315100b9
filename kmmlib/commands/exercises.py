"""``kmm exercises release|check``: generate the student notebooks from the solutions."""

from __future__ import annotations

import json
from pathlib import Path

from kmmlib.exercises.release import release

NAME = "exercises"
HELP = "generate the student exercise notebooks from exercises/solutions (or check them)"


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=["release", "check"],
                        help="release: write exercises/*.ipynb; check: fail if any is stale")
    parser.add_argument("--dir", default="exercises", type=Path,
                        help="the exercises folder (default: ./exercises)")


def run(args) -> int:
    stale = release(args.dir / "solutions", args.dir, write=args.action == "release")
    if args.json:
        print(json.dumps({"action": args.action, "stale": [str(p) for p in stale]}))
    elif args.action == "release":
        print(f"{len(stale)} student notebook(s) written" +
              "".join(f"\n  {p}" for p in stale))
    elif stale:
        print("out of date (run `make release`):" + "".join(f"\n  {p}" for p in stale))
    else:
        print("student notebooks are in sync with the solutions")
    return 1 if stale and args.action == "check" else 0

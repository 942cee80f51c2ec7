"""`python -m pointmap PHOTOS_DIR -o OUT.blend [options]`: the command line in the bpy module.

The same command as `blender -b -c pointmap ...` (see `cli`, also for the exit codes), for a Python
environment with the `bpy` module and no Blender binary. Downloads need --download and are allowed
unless POINTMAP_OFFLINE is set.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    from .cli import build_parser, run_standalone

    try:
        args = build_parser(prog="python -m pointmap").parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return run_standalone(args, online=os.environ.get("POINTMAP_OFFLINE", "") in ("", "0"))


if __name__ == "__main__":
    sys.exit(main())

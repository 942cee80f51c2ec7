"""Headless demo: `python -m pointmap.demo PHOTOS_DIR OUT.blend [--checkpoint X] [cli options]`.

Runs in the bpy module (what `make demo` uses): registers the extension's classes, reconstructs the
photos with the same operator the panel uses, and saves the .blend. Checkpoint: --checkpoint, else
$POINTMAP_CHECKPOINT, else the registry default in the weights folder; without any it exits with
code 3 (see `cli` for all exit codes) and says how to get one. It never invents outputs.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from .cli import EXIT_FAILED, build_parser

    # Positional OUT.blend (the Makefile's form) becomes the CLI's -o.
    parser = build_parser(prog="python -m pointmap.demo")
    if len(argv) >= 2 and not argv[0].startswith("-") and not argv[1].startswith("-") and "-o" not in argv \
            and "--output" not in argv:
        argv = [argv[0], "-o", argv[1], *argv[2:]]
    if "--download" not in argv:
        argv.append("--download")
    args = parser.parse_args(argv)

    from .cli import run_standalone

    try:
        # `make demo` is an explicit request to set everything up, so it may download the default weights
        # (the licence is printed first); the bpy module itself has no online-access preference.
        # POINTMAP_OFFLINE=1 forbids it (tests, air-gapped machines).
        return run_standalone(args, online=os.environ.get("POINTMAP_OFFLINE", "") in ("", "0"))
    except Exception as err:   # last resort: one readable line, then the details
        import traceback

        traceback.print_exc()
        print(f"pointmap demo failed: {err}", flush=True)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

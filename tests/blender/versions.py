"""Run the Blender-side tests against several Blender releases (what `make test-blender` runs).

Usage: python tests/blender/versions.py [--versions 4.2.0 4.5.15 5.0.1] [--base .venv] [-- pytest args]

Each release gets its own virtual environment, build/blender-<version>/, holding only the `bpy` wheel of that
release, pytest, and numpy pinned to the base environment's version. Everything else (torch, the editable
pointmap, ...) comes from the base environment (`make test`'s .venv) through a site directory added *after* the
version's own, so `import bpy` finds the release under test while the rest of the stack is the one `make test`
uses: the only thing that differs between runs is Blender. The release the base environment already holds runs there.
bpy wheels for Blender 4.2-5.0 are built for CPython 3.11, so the base environment must be a 3.11 one.

A release whose wheel cannot be installed here (no network, no wheel for this platform) is reported as
NOT TESTED with pip's reason; the script exits 1 when any release failed its tests or could not be tested.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"\d+ (passed|failed|error|errors|skipped)\b.* in [\d.]+s")
DEFAULT_VERSIONS = ("4.2.0", "4.5.15", "5.0.1")
# The Blender-touching tests: extension install / enable / uninstall, scene building, operators, CLI, UI.
BLENDER_TESTS = ("tests/blender", "tests/scene", "tests/operators", "tests/ui")


def _base_info(base_python: Path) -> tuple[str, str, str, str]:
    """(python major.minor, purelib site-packages, numpy version, bpy version or '') of the base environment."""
    code = ("import sys, sysconfig, importlib.metadata as m; print('%d.%d' % sys.version_info[:2]); "
            "print(sysconfig.get_paths()['purelib']); print(m.version('numpy'))\n"
            "try: print(m.version('bpy'))\nexcept m.PackageNotFoundError: print('')")
    out = subprocess.run([str(base_python), "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    return out[0], out[1], out[2], out[3]


def _venv_site(venv: Path) -> Path:
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def prepare(version: str, base_python: Path, base_site: str, numpy_version: str) -> tuple[Path | None, str]:
    """Create build/blender-<version> with that bpy; return (its python, '') or (None, why it cannot be tested)."""
    venv = ROOT / "build" / f"blender-{version}"
    py = venv / "bin" / "python"
    stamp = venv / ".pointmap-bpy"
    if stamp.exists() and stamp.read_text() == f"{version} {numpy_version}\n":
        return py, ""
    if not py.exists():
        subprocess.run([str(base_python), "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", f"bpy=={version}", f"numpy=={numpy_version}",
                          "pytest"], capture_output=True, text=True)
    if pip.returncode != 0:
        lines = [ln for ln in (pip.stderr + pip.stdout).splitlines() if ln.strip() and "is ignored" not in ln]
        return None, f"pip could not install bpy=={version}: " + (" | ".join(lines[-3:]) or "no reason given")
    # Site directory of the base environment, processed after this venv's own (its .pth files included, so the
    # editable pointmap install resolves), hence after the bpy of this release.
    (_venv_site(venv) / "zz_pointmap_base.pth").write_text(f"import site; site.addsitedir({base_site!r})\n")
    stamp.write_text(f"{version} {numpy_version}\n")
    return py, ""


def run_tests(py: Path, version: str, pytest_args: list[str]) -> tuple[int, str]:
    """Run the Blender-side tests under one release; return (pytest exit code, its closing line)."""
    check = subprocess.run([str(py), "-c", "import bpy; print(bpy.app.version_string)"], capture_output=True,
                           text=True, cwd=ROOT)
    if check.returncode != 0 or not check.stdout.strip().startswith(version.rsplit(".", 1)[0]):
        return 1, f"`import bpy` did not load Blender {version}: {(check.stderr or check.stdout).strip()[-300:]}"
    print(f"== Blender {check.stdout.strip()} ({os.path.relpath(py.parent.parent, ROOT)}) ==", flush=True)
    proc = subprocess.Popen([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", *BLENDER_TESTS, *pytest_args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        if SUMMARY.search(line):     # pytest's closing line (Blender may print more at exit)
            last = line.strip().strip("=").strip()
    return proc.wait(), last or "no pytest summary line"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--versions", nargs="+", default=list(DEFAULT_VERSIONS))
    ap.add_argument("--base", default=str(ROOT / ".venv"), help="base virtual environment (make test's .venv)")
    args = ap.parse_args(argv)
    base_python = Path(args.base) / "bin" / "python"
    if not base_python.exists():
        print(f"test-blender: no base environment at {args.base} (run `make test` once to create it)")
        return 1
    pyver, base_site, numpy_version, base_bpy = _base_info(base_python)
    if pyver != "3.11":
        print(f"test-blender: the base environment runs Python {pyver}; bpy 4.2-5.0 wheels need CPython 3.11")
        return 1
    results: list[tuple[str, str, str]] = []
    for version in args.versions:
        t0 = time.monotonic()
        if version == base_bpy:     # the base environment already is this release: no second copy of it
            py, why = base_python, ""
        else:
            py, why = prepare(version, base_python, base_site, numpy_version)
        if py is None:
            print(f"== Blender {version}: NOT TESTED == {why}", flush=True)
            results.append((version, "NOT TESTED", why))
            continue
        rc, last = run_tests(py, version, extra)
        results.append((version, "passed" if rc == 0 else f"FAILED (pytest exit {rc})",
                        f"{last} [{time.monotonic() - t0:.0f} s]"))
    print("\n== test-blender summary ==")
    for version, verdict, detail in results:
        print(f"Blender {version:8s} {verdict:22s} {detail}")
    return 0 if all(v == "passed" for _, v, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())

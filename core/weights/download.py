"""Resumable, cancellable, verified downloads of checkpoints (urllib only; no network at import time).

`download(url, dest)` streams into `dest.part`, resumes an existing `.part` with an HTTP Range request,
reports progress as stage "download", checks the cancel token between chunks (the `.part` is kept for a
later resume), verifies the finished file and only then moves it into place with `os.replace`, so a file
at `dest` is always complete. `download_checkpoint(name, cache_dir)` fetches a registry checkpoint into
`<cache_dir>/<name>/`.

Verification, in order: the size (the server's Content-Length/Content-Range, and the registry's exact size
where known), then the SHA-256 of the whole finished file (the registry's digest where known, otherwise the
server's: Hugging Face resolve URLs send a large file's SHA-256 as `X-Linked-Etag`, some servers as `ETag`),
then the file-type check (JSON parses, checkpoints open). The digest covers the whole file, so a resumed
download is verified end to end, including bytes that were already on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import CancelToken, CheckpointError, PointmapError, check_cancel
from ..progress import ProgressFn, report
from . import registry

USER_AGENT = "pointmap/0.1 (checkpoint downloader)"
CHUNK = 1 << 20
TIMEOUT_S = 30.0
_TORCH_SUFFIXES = (".pth", ".pt", ".bin")


class DownloadError(PointmapError):
    """A download failed for a network/server/disk reason (not because the file was bad)."""


def default_cache_dir() -> Path:
    """Where checkpoints go outside Blender: $POINTMAP_CACHE, else the platform's user cache + /pointmap."""
    env = os.environ.get("POINTMAP_CACHE")
    if env:
        return Path(env).expanduser()
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "pointmap" / "cache"
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "pointmap"


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """`bytes START-END/TOTAL` or `bytes */TOTAL` -> (START, TOTAL); None where absent or '*'."""
    m = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    return start, (int(m.group(2)) if m.group(2) != "*" else None)


def _header_sha256(headers) -> str | None:
    """The SHA-256 a server states for the file: `X-Linked-Etag` first (Hugging Face sends the git blob's
    SHA-1 as `ETag` for small files and the LFS object's SHA-256 as `X-Linked-Etag` for large ones), then
    `ETag`; only a 64-hex-digit value counts as a digest (other ETags are opaque version tags)."""
    if headers is None:
        return None
    for key in ("X-Linked-Etag", "ETag"):
        value = (headers.get(key) or "").strip()
        value = value[2:] if value.startswith("W/") else value
        value = value.strip('"').lower()
        if re.fullmatch(r"[0-9a-f]{64}", value):
            return value
    return None


def file_sha256(path: Path, chunk: int = CHUNK) -> str:
    """Hex SHA-256 of the file at `path`, read in `chunk`-byte pieces (bounded memory for multi-GB files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(chunk):
            digest.update(data)
    return digest.hexdigest()


def _default_verify(name: str) -> Callable[[Path], None] | None:
    """The integrity check for a file called `name`: JSON parses, checkpoints open (header/mmap only)."""
    if name.endswith(".json"):
        def check_json(path: Path) -> None:
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, ValueError) as err:
                raise CheckpointError(f"{path} is not valid JSON ({err}).") from None
        return check_json
    if name.endswith(".safetensors"):
        def check_safetensors(path: Path) -> None:
            from .checkpoint import safetensors_keys

            if not safetensors_keys(path):
                raise CheckpointError(f"{path} holds no tensors.")
        return check_safetensors
    if name.endswith(_TORCH_SUFFIXES):
        def check_torch(path: Path) -> None:
            from .checkpoint import read_checkpoint

            read_checkpoint(path)
        return check_torch
    return None


def _open(url: str, offset: int, timeout: float):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _network_error(url: str, err: Exception) -> DownloadError:
    if isinstance(err, urllib.error.HTTPError):
        hint = " (the file may need a Hugging Face login or licence acceptance)" if err.code in (401, 403) else ""
        return DownloadError(f"Downloading {url} failed: HTTP {err.code} {err.reason}{hint}.")
    reason = getattr(err, "reason", None) or err
    return DownloadError(f"Downloading {url} failed: {reason}. Check the network connection; "
                         "running the download again resumes where it stopped.")


def _check_space(folder: Path, needed: int, url: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(f"Not enough disk space in {folder} for {url}: {needed / 1e9:.2f} GB needed, "
                            f"{free / 1e9:.2f} GB free.")


def _stream(resp, part: Path, offset: int, total: int | None, label: str, progress: ProgressFn | None,
            cancel: CancelToken | None, chunk: int) -> int:
    """Append the body of `resp` to `part` (which holds `offset` bytes). Returns the bytes now in `part`."""
    done = offset
    # One pass over the body; the body is finite, so is the loop (a dropped connection reads as b"").
    with open(part, "ab" if offset else "wb") as f:
        report(progress, "download", done, total or 0, _message(label, done, total))
        while True:
            check_cancel(cancel)
            data = resp.read(chunk)
            if not data:
                break
            f.write(data)
            done += len(data)
            report(progress, "download", done, total or 0, _message(label, done, total))
    return done


def _message(label: str, done: int, total: int | None) -> str:
    of = f" / {total / 1e6:.1f}" if total else ""
    return f"{label}: {done / 1e6:.1f}{of} MB"


def download(url: str, dest_path: str | Path, progress: ProgressFn | None = None, cancel: CancelToken | None = None,
             expected_size: int | None = None, verify: Callable[[Path], None] | None = None, *,
             expected_sha256: str | None = None, label: str | None = None, chunk_size: int = CHUNK,
             timeout: float = TIMEOUT_S) -> Path:
    """Download `url` to `dest_path` and return it.

    Resumes `dest_path + ".part"` when present (Range request; a server that ignores Range, or answers for
    the wrong offset, makes it start over once). progress gets ("download", bytes done, bytes total; total
    is 0 when the server does not say). On cancel: raises Cancelled and keeps the `.part`.
    expected_size: exact size in bytes, when known; a mismatch deletes the download.
    expected_sha256: hex SHA-256 of the whole file, when known (the registry's); else the server's digest
            header is used when it sends one (module docstring). A mismatch deletes the download and names
            both digests (CheckpointError).
    verify: called with the finished `.part` before it is moved into place; it raises (CheckpointError) to
            reject the file, which is then deleted. None = the default check for the file name (JSON parses;
            .pth/.pt/.bin/.safetensors open as checkpoints).
    Raises DownloadError (network, HTTP, disk space, connection dropped: the `.part` is kept) or
    CheckpointError (the file arrived but is not what it should be: nothing is kept).
    """
    dest = Path(dest_path)
    created = _missing_parents(dest.parent)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _download(url, dest, progress, cancel, expected_size, verify, expected_sha256, label,
                         chunk_size, timeout)
    finally:
        _remove_if_empty(created)


def _missing_parents(folder: Path) -> list[Path]:
    """The folders of `folder`'s chain that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders a failed download created, deepest first, stopping at the first that holds
    anything (a kept `.part`, another file): a failed download leaves no empty folder in the cache."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _download(url: str, dest: Path, progress: ProgressFn | None, cancel: CancelToken | None,
              expected_size: int | None, verify: Callable[[Path], None] | None, expected_sha256: str | None,
              label: str | None, chunk_size: int, timeout: float) -> Path:
    part = _part_path(dest)
    label = label or dest.name
    verify = verify if verify is not None else _default_verify(dest.name)
    total = None
    served_sha256 = None
    for _attempt in range(2):   # a second attempt only after discarding an unusable .part
        offset = part.stat().st_size if part.exists() else 0
        if expected_size is not None and offset > expected_size:
            part.unlink()
            offset = 0
        if expected_size is not None and offset == expected_size:
            total = offset
            break
        try:
            resp = _open(url, offset, timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and offset:
                served_sha256 = _header_sha256(err.headers)
                _, size = _content_range(err.headers.get("Content-Range"))
                if size == offset:       # the .part already holds the whole file
                    total = offset
                    break
                part.unlink()
                continue
            raise _network_error(url, err) from None
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise _network_error(url, err) from None
        with resp:
            served_sha256 = _header_sha256(resp.headers)
            length = resp.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            if offset and resp.status == 206:
                start, total = _content_range(resp.headers.get("Content-Range"))
                if start != offset:      # not the bytes we asked for: start from zero
                    part.unlink()
                    continue
                total = total or (offset + length if length is not None else None)
            else:                        # a full response: the server ignored Range (or there was none)
                offset = 0
                total = length
            total = total or expected_size
            if total:
                _check_space(dest.parent, total - offset, url)
            try:
                done = _stream(resp, part, offset, total, label, progress, cancel, chunk_size)
            except (OSError, urllib.error.URLError) as err:   # timeouts, resets: keep what we have
                raise _network_error(url, err) from None
        if total is not None and done < total:
            raise DownloadError(f"The connection closed after {done} of {total} bytes of {url}; run the download "
                                "again to resume it.")
        break
    else:
        raise DownloadError(f"Downloading {url} failed: the server did not honour resuming, even from scratch.")
    size = part.stat().st_size
    if (expected_size is not None and size != expected_size) or (total is not None and size != total):
        part.unlink()
        raise DownloadError(f"Downloading {url} gave {size} bytes instead of {expected_size or total}; the partial "
                            "file was deleted, please try again.")
    want = (expected_sha256 or "").lower() or served_sha256
    if want is not None:
        got = file_sha256(part)
        if got != want:
            part.unlink()
            where = "the registry" if expected_sha256 else "the server"
            raise CheckpointError(f"The file downloaded from {url} is corrupt and was deleted: its SHA-256 is "
                                  f"{got}, {where} says {want} ({size} bytes arrived). Please try again.")
    if verify is not None:
        try:
            verify(part)
        except PointmapError as err:
            part.unlink(missing_ok=True)
            raise CheckpointError(f"The file downloaded from {url} is not usable and was deleted: {err}") from None
    os.replace(part, dest)
    return dest


def _target(spec: registry.CheckpointSpec, folder: Path, source: str) -> Path:
    files = spec.files(source)
    return folder / files[0].filename if len(files) == 1 else folder


def cached_checkpoint(name: str, cache_dir: str | Path | None = None, source: str | None = None) -> Path | None:
    """Local path of a fully downloaded registry checkpoint (a file, or the folder of a multi-file source),
    or None. Without `source`, the default source is preferred, then any other complete one."""
    spec = registry.get(name)
    folder = Path(cache_dir or default_cache_dir()) / spec.name
    sources = [source] if source else [spec.default_source, *(s for s in spec.sources if s != spec.default_source)]
    for src in sources:
        if all((folder / f.filename).is_file() for f in spec.files(src)):
            return _target(spec, folder, src)
    return None


def download_checkpoint(name: str, cache_dir: str | Path | None = None, progress: ProgressFn | None = None,
                        cancel: CancelToken | None = None, source: str | None = None) -> Path:
    """Download registry checkpoint `name` into `<cache_dir>/<name>/` (skipping files already complete) and
    return the path `load_checkpoint` takes. Read `registry.get(name).license` first: all official weights are
    for non-commercial use."""
    spec = registry.get(name)
    source = source or spec.default_source
    folder = Path(cache_dir or default_cache_dir()) / spec.name
    files = spec.files(source)
    for f in files:
        dest = folder / f.filename
        if not dest.is_file():   # files reach their final name only once verified
            download(f.url, dest, progress, cancel, expected_size=f.size, expected_sha256=f.sha256,
                     label=f"{spec.name}/{f.filename}")
    target = _target(spec, folder, source)
    if len(files) > 1:           # each file was verified alone; together they must also fit (config + weights)
        from .checkpoint import read_checkpoint

        read_checkpoint(target)
    return target

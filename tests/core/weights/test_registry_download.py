"""core/registry.py (official checkpoints) and core/download.py (resumable, cancellable, verified downloads).

Downloads are served by a local `http.server` on 127.0.0.1 with a Range-capable handler written here;
no test touches the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import helpers_parity as hp
import pytest
from conftest import FIXTURES, fixture_dir
from pointmap.core.errors import Cancelled, CancelToken, CheckpointError
from pointmap.core.weights import download as D
from pointmap.core.weights import registry

KEYS_DIR = fixture_dir("POINTMAP_CKPT_KEYS_DIR", FIXTURES / "checkpoint_keys")
VGGT_KEYS = fixture_dir("POINTMAP_VGGT_KEYS", FIXTURES / "vggt" / "checkpoint_keys.json")


# ------------------------------------------------------------------ registry

def test_registry_names_and_fields():
    assert registry.names() == [
        "DA3-BASE", "DUSt3R_ViTLarge_BaseDecoder_224_linear", "DUSt3R_ViTLarge_BaseDecoder_512_linear",
        "DUSt3R_ViTLarge_BaseDecoder_512_dpt", "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric", "VGGT-1B",
        "DA3-SMALL", "DA3-LARGE-1.1", "DA3-GIANT-1.1", "DA3METRIC-LARGE", "DA3MONO-LARGE",
        "DA3NESTED-GIANT-LARGE-1.1"]
    for name in registry.names():
        spec = registry.get(name)
        assert spec.name == name and spec.family in ("dust3r", "mast3r", "vggt", "da3")
        assert spec.description and "\n" not in spec.description
        if spec.commercial_ok:
            assert spec.family == "da3" and spec.license.startswith("Apache-2.0")
        else:
            assert "non-commercial" in spec.license
        assert spec.input_size in (224, 512, 518, 504) and spec.approx_size > 1e8
        assert spec.default_source in spec.sources
        for files in spec.sources.values():
            for f in files:
                assert f.url.startswith("https://") and f.url.endswith("/" + f.filename) and f.approx_size > 0
    assert "VGGT-1B-Commercial" in registry.get("VGGT-1B").license


def test_default_is_the_best_commercial_any_view_checkpoint():
    """New users are offered a checkpoint they may use on paid work: Apache-2.0, cameras for several views,
    the largest such one; shown first (the preferences' initial choice) and what resolve falls back to."""
    from pointmap.core.weights.resolve import default_name

    spec = registry.get(registry.DEFAULT)
    assert registry.names()[0] == registry.DEFAULT == default_name() == "DA3-BASE"
    assert spec.commercial_ok and spec.license.startswith("Apache-2.0")
    any_view_commercial = [registry.get(n) for n in registry.names()
                           if registry.get(n).commercial_ok and "any number of views" in registry.get(n).description]
    assert {s.name for s in any_view_commercial} == {"DA3-SMALL", "DA3-BASE"}
    assert spec.approx_size == max(s.approx_size for s in any_view_commercial)


@pytest.mark.parametrize("path", sorted(KEYS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_registry_matches_key_lists(path):
    d = json.loads(path.read_text())
    spec = registry.get(d["name"])
    assert spec.hf_repo == d["hf"]["repo_id"]
    assert spec.files("naver")[0].url == d["pth"]["url"] and spec.files("naver")[0].filename == d["pth"]["filename"]
    assert [f.filename for f in spec.files("hf")] == ["config.json", "model.safetensors"]
    assert abs(spec.approx_size - d["float32_bytes_unique"]) < 0.01 * d["float32_bytes_unique"]
    assert spec.input_size == max(int(s) for s in d["load_model_instantiation_string"].split("img_size=(")[1]
                                  .split(")")[0].split(","))
    assert "CC BY-NC-SA 4.0" in spec.license


def test_registry_vggt():
    spec = registry.get("VGGT-1B")
    d = json.loads(VGGT_KEYS.read_text())
    assert spec.hf_repo == d["official_checkpoints"]["hf_repo"] == "facebook/VGGT-1B"
    assert spec.files()[0].url == "https://huggingface.co/facebook/VGGT-1B/resolve/main/model.pt"
    assert abs(spec.approx_size - d["official_checkpoints"]["expected_size_bytes_fp32"]) < 1e7
    assert spec.input_size == 518


def test_registry_lookup_errors(tmp_path):
    assert registry.get("vggt-1b").name == "VGGT-1B"
    with pytest.raises(CheckpointError, match="Unknown checkpoint name 'nope'.*VGGT-1B"):
        registry.get("nope")
    with pytest.raises(CheckpointError, match="source"):
        registry.get("VGGT-1B").files("naver")
    assert registry.resolve("VGGT-1B") is registry.get("VGGT-1B")
    (tmp_path / "x.pth").write_bytes(b"1")
    assert registry.resolve(tmp_path / "x.pth") == tmp_path / "x.pth"
    assert registry.resolve(str(tmp_path)) == tmp_path
    with pytest.raises(CheckpointError, match="neither an existing checkpoint"):
        registry.resolve(tmp_path / "missing.pth")


# ------------------------------------------------------------------ download (local server)

_LINEAR_MODEL = hp.linear_model()
assert _LINEAR_MODEL is not None, f"{hp.PARITY}: no DUSt3R model with a linear head and a model.pth"
LINEAR = _LINEAR_MODEL.folder
PTH = (LINEAR / "model.pth").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.files`; honours `Range: bytes=N-` unless `server.range_ok` is False; when
    `server.cut_after` is set, sends only that many body bytes once and drops the connection."""

    def do_GET(self):  # noqa: N802 (http.server naming)
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start, status = 0, 200
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and srv.range_ok:
            start, status = int(m.group(1)), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        for key, value in srv.headers.get(self.path, {}).items():
            self.send_header(key, value)
        self.end_headers()
        if srv.cut_after is not None:
            body, srv.cut_after = body[: srv.cut_after], None
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.range_ok, srv.cut_after = {"/model.pth": PTH}, [], True, None
    srv.headers = {}   # path -> extra response headers (digest headers)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def test_full_download_reports_progress(server, tmp_path):
    seen = []
    dest = D.download(server.url + "/model.pth", tmp_path / "m" / "model.pth", progress=seen.append,
                      chunk_size=1 << 16)
    assert dest.read_bytes() == PTH and not (tmp_path / "m" / "model.pth.part").exists()
    assert all(p.stage == "download" and p.total == len(PTH) for p in seen)
    assert [p.done for p in seen] == sorted(p.done for p in seen) and seen[-1].done == len(PTH)
    assert server.requests == [("/model.pth", None)]


def test_resume_from_partial_file(server, tmp_path):
    dest = tmp_path / "model.pth"
    (tmp_path / "model.pth.part").write_bytes(PTH[:300_000])
    seen = []
    D.download(server.url + "/model.pth", dest, progress=seen.append, expected_size=len(PTH))
    assert dest.read_bytes() == PTH
    assert server.requests == [("/model.pth", "bytes=300000-")]
    assert seen[0].done == 300_000


def test_dropped_connection_then_resume(server, tmp_path):
    dest = tmp_path / "model.pth"
    server.cut_after = 200_000
    with pytest.raises(D.DownloadError, match="resume"):
        D.download(server.url + "/model.pth", dest)
    assert (tmp_path / "model.pth.part").stat().st_size == 200_000 and not dest.exists()
    D.download(server.url + "/model.pth", dest)
    assert dest.read_bytes() == PTH and server.requests[-1] == ("/model.pth", "bytes=200000-")


def test_cancel_keeps_part_for_resume(server, tmp_path):
    dest, token = tmp_path / "model.pth", CancelToken()

    def progress(p):
        if p.done >= 3 * 65536:
            token.cancel()

    with pytest.raises(Cancelled):
        D.download(server.url + "/model.pth", dest, progress=progress, cancel=token, chunk_size=65536)
    kept = (tmp_path / "model.pth.part").stat().st_size
    assert 0 < kept < len(PTH) and not dest.exists()
    D.download(server.url + "/model.pth", dest)
    assert dest.read_bytes() == PTH and server.requests[-1] == ("/model.pth", f"bytes={kept}-")


def test_server_without_range_support_restarts(server, tmp_path):
    server.range_ok = False
    dest = tmp_path / "model.pth"
    (tmp_path / "model.pth.part").write_bytes(b"\0" * 300_000)   # would corrupt the file if appended to
    D.download(server.url + "/model.pth", dest)
    assert dest.read_bytes() == PTH and server.requests == [("/model.pth", "bytes=300000-")]


def test_complete_part_and_oversized_part(server, tmp_path):
    dest = tmp_path / "model.pth"
    (tmp_path / "model.pth.part").write_bytes(PTH)             # server answers 416: already complete
    D.download(server.url + "/model.pth", dest)
    assert dest.read_bytes() == PTH
    (tmp_path / "b.pth.part").write_bytes(PTH + b"extra")      # longer than the file: start over
    D.download(server.url + "/model.pth", tmp_path / "b.pth")
    assert (tmp_path / "b.pth").read_bytes() == PTH


def test_corrupt_payloads_are_rejected_and_deleted(server, tmp_path):
    server.files["/garbage.pth"] = bytes(range(256)) * 64
    server.files["/cut.pth"] = PTH[: len(PTH) // 2]            # served "completely", but truncated
    server.files["/page.safetensors"] = b"<html>Sign in to continue</html>"
    for name, words in (("garbage.pth", "not a checkpoint"), ("cut.pth", "truncated or corrupt"),
                        ("page.safetensors", "safetensors")):
        with pytest.raises(CheckpointError) as err:
            D.download(f"{server.url}/{name}", tmp_path / name)
        assert "not usable and was deleted" in str(err.value) and words in str(err.value)
        assert not (tmp_path / name).exists() and not (tmp_path / (name + ".part")).exists()


def test_size_mismatch_http_errors_and_custom_verify(server, tmp_path):
    with pytest.raises(D.DownloadError, match="instead of"):
        D.download(server.url + "/model.pth", tmp_path / "a.pth", expected_size=len(PTH) + 1)
    assert not (tmp_path / "a.pth").exists() and not (tmp_path / "a.pth.part").exists()
    with pytest.raises(D.DownloadError, match="HTTP 404"):
        D.download(server.url + "/missing.pth", tmp_path / "b.pth")

    def reject(path):
        raise CheckpointError(f"{path} rejected by the test")

    with pytest.raises(CheckpointError, match="rejected by the test"):
        D.download(server.url + "/model.pth", tmp_path / "c.pth", verify=reject)
    assert not (tmp_path / "c.pth").exists()


def _serve_tiny_registry(server, monkeypatch, config: bytes) -> None:
    """Registers checkpoint "Tiny": source "hf" (config.json + model.safetensors) and "naver" (tiny.pth)."""
    files = {"/tiny/config.json": config,
             "/tiny/model.safetensors": (LINEAR / "hf" / "model.safetensors").read_bytes(),
             "/tiny/tiny.pth": PTH}
    server.files.update(files)
    spec = registry.CheckpointSpec(
        name="Tiny", family="dust3r", hf_repo="test/tiny",
        sources={"hf": tuple(registry.RemoteFile(n, server.url + "/tiny/" + n, len(files["/tiny/" + n]))
                             for n in ("config.json", "model.safetensors")),
                 "naver": (registry.RemoteFile("tiny.pth", server.url + "/tiny/tiny.pth", len(PTH)),)},
        default_source="hf", license="test (non-commercial)", approx_size=len(PTH),
        input_size=max(json.loads((LINEAR / "hf" / "config.json").read_text())["img_size"]),
        description="tiny test model")
    monkeypatch.setattr(registry, "_BY_NAME", {"Tiny": spec})


def test_download_checkpoint_from_registry(server, tmp_path, monkeypatch):
    _serve_tiny_registry(server, monkeypatch, (LINEAR / "hf" / "config.json").read_bytes())
    assert D.cached_checkpoint("Tiny", tmp_path) is None
    seen = []
    path = D.download_checkpoint("Tiny", tmp_path, progress=seen.append)
    assert path == tmp_path / "Tiny" and D.cached_checkpoint("Tiny", tmp_path) == path
    assert {p.message.split(":")[0] for p in seen} == {"Tiny/config.json", "Tiny/model.safetensors"}
    n = len(server.requests)
    assert D.download_checkpoint("Tiny", tmp_path) == path and len(server.requests) == n   # already complete
    pth = D.download_checkpoint("Tiny", tmp_path, source="naver")
    assert pth == tmp_path / "Tiny" / "tiny.pth" and pth.read_bytes() == PTH
    from pointmap.core.weights.checkpoint import load_checkpoint

    assert load_checkpoint(path)[1].source_format == "hf" and load_checkpoint(pth)[1].source_format == "pth"


def test_download_checkpoint_rejects_files_that_do_not_fit_together(server, tmp_path, monkeypatch):
    """Each file is fine alone (valid JSON, valid safetensors), but the config describes no DUSt3R network."""
    _serve_tiny_registry(server, monkeypatch, b'{"model_type": "something else"}')
    with pytest.raises(CheckpointError, match="config.json does not describe a DUSt3R/MASt3R network"):
        D.download_checkpoint("Tiny", tmp_path)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("POINTMAP_CACHE", str(tmp_path / "c"))
    assert D.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("POINTMAP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    if os.name != "nt":
        assert D.default_cache_dir() == tmp_path / "x" / "pointmap"


def test_import_does_not_touch_network_or_torch():
    code = ("import socket, sys\n"
            "socket.socket.connect = lambda *a: (_ for _ in ()).throw(AssertionError('network at import'))\n"
            "import pointmap.core.weights.download, pointmap.core.weights.registry\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_da3_matches_fixture_layouts():
    """DA3 entries: repository, size and licence agree with the reference key lists; family and input
    size are the ones the loader derives from a checkpoint."""
    from helpers_da3 import DA3_KEYS_FILE

    configs = json.loads(DA3_KEYS_FILE.read_text())["configs"]
    by_repo = {repo.split("/")[1]: (preset, c) for preset, c in configs.items() for repo in c["hf_repos"]}
    # The registry's DA3 entries that this set's key lists describe (any subset of the presets).
    da3 = [registry.get(n) for n in registry.names() if registry.get(n).family == "da3" and n in by_repo]
    assert da3, f"{DA3_KEYS_FILE}: no preset of the registry's DA3 repositories"
    for spec in da3:
        preset, c = by_repo[spec.name]
        assert spec.hf_repo == f"depth-anything/{spec.name}"
        assert abs(spec.approx_size - 4 * int(c["total_parameters"])) < 1e6
        assert spec.commercial_ok == ("Apache" in c["license_per_readme"])
        assert [f.filename for f in spec.files()] == ["config.json", "model.safetensors"]
        assert spec.input_size == 504


# -- content verification: size and SHA-256 -----------------------------------------------------------------

PTH_SHA = hashlib.sha256(PTH).hexdigest()


def _flipped(data: bytes, at: int, count: int = 1000) -> bytes:
    """`data` with `count` bytes from offset `at` inverted: same length, and inside a stored tensor so the
    checkpoint still parses (the case a parse-only check accepted)."""
    return data[:at] + bytes(b ^ 0xFF for b in data[at:at + count]) + data[at + count:]


def test_flipped_bytes_parse_but_fail_the_servers_digest(server, tmp_path):
    bad = _flipped(PTH, len(PTH) // 2)
    server.files["/bad.pth"] = bad
    server.headers["/bad.pth"] = {"X-Linked-Etag": f'"{PTH_SHA}"', "ETag": '"0123abcd"'}
    D._default_verify("bad.pth")(_write(tmp_path / "probe.pth", bad))      # it does parse: only a digest sees it
    with pytest.raises(CheckpointError) as err:
        D.download(server.url + "/bad.pth", tmp_path / "d" / "bad.pth")
    text = str(err.value)
    assert PTH_SHA in text and hashlib.sha256(bad).hexdigest() in text and "server" in text
    assert not (tmp_path / "d").exists()            # nothing kept, not even the folder it made


def _write(path, data):
    path.write_bytes(data)
    return path


def test_etag_digest_and_registry_digest(server, tmp_path):
    server.headers["/model.pth"] = {"ETag": f'W/"{PTH_SHA.upper()}"'}      # plain ETag form is read too
    assert D.download(server.url + "/model.pth", tmp_path / "a.pth").read_bytes() == PTH
    server.headers["/model.pth"] = {}                # no digest header: the registry's digest still applies
    with pytest.raises(CheckpointError, match=f"registry says {'0' * 64}"):
        D.download(server.url + "/model.pth", tmp_path / "b.pth", expected_sha256="0" * 64)
    assert not (tmp_path / "b.pth").exists() and not (tmp_path / "b.pth.part").exists()
    assert D.download(server.url + "/model.pth", tmp_path / "c.pth", expected_sha256=PTH_SHA).read_bytes() == PTH


def test_no_digest_anywhere_still_checks_size(server, tmp_path):
    """Without any digest the size is still checked: a wrong registry size deletes the file."""
    assert D.download(server.url + "/model.pth", tmp_path / "a.pth").read_bytes() == PTH
    with pytest.raises(D.DownloadError, match=f"gave {len(PTH)} bytes instead of {len(PTH) - 7}"):
        D.download(server.url + "/model.pth", tmp_path / "b.pth", expected_size=len(PTH) - 7)
    assert not list(tmp_path.glob("b.pth*"))


def test_resumed_download_is_verified_end_to_end(server, tmp_path):
    server.headers["/model.pth"] = {"X-Linked-Etag": PTH_SHA}
    dest = tmp_path / "model.pth"
    server.cut_after = 250_000
    with pytest.raises(D.DownloadError, match="resume"):
        D.download(server.url + "/model.pth", dest)
    D.download(server.url + "/model.pth", dest)        # resumed, digest of the whole file matches
    assert dest.read_bytes() == PTH and server.requests[-1] == ("/model.pth", "bytes=250000-")
    # A .part whose first bytes went bad on disk: the resumed tail is fine, the whole file is not.
    dest2 = tmp_path / "again.pth"
    (tmp_path / "again.pth.part").write_bytes(_flipped(PTH[:250_000], 1000, 10))
    with pytest.raises(CheckpointError, match="SHA-256"):
        D.download(server.url + "/model.pth", dest2)
    assert not list(tmp_path.glob("again.pth*"))


def test_failed_download_leaves_no_empty_cache_folder(server, tmp_path, monkeypatch):
    _serve_tiny_registry(server, monkeypatch, (LINEAR / "hf" / "config.json").read_bytes())
    server.files.pop("/tiny/config.json")              # the first file 404s
    with pytest.raises(D.DownloadError, match="HTTP 404"):
        D.download_checkpoint("Tiny", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_registry_sizes_and_digests_reach_the_download(server, tmp_path, monkeypatch):
    _serve_tiny_registry(server, monkeypatch, (LINEAR / "hf" / "config.json").read_bytes())
    spec = registry._BY_NAME["Tiny"]
    wrong = registry.RemoteFile("tiny.pth", server.url + "/tiny/tiny.pth", len(PTH), size=len(PTH),
                                sha256="f" * 64)
    monkeypatch.setattr(registry, "_BY_NAME", {"Tiny": dataclasses.replace(spec, sources={"naver": (wrong,)},
                                                                           default_source="naver")})
    with pytest.raises(CheckpointError, match="registry says f{64}"):
        D.download_checkpoint("Tiny", tmp_path)
    assert not (tmp_path / "Tiny").exists()

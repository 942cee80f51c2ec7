"""core/registry.py (official checkpoints) and core/download.py (resumable, cancellable, verified downloads).

Downloads are served by a local `http.server` on 127.0.0.1 with a Range-capable handler written here;
no test touches the network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pointmap.core import registry
from pointmap.core.errors import CheckpointError

FIXTURES = Path(__file__).parent / "fixtures"
KEYS_DIR = Path(os.environ.get("POINTMAP_CKPT_KEYS_DIR", FIXTURES / "checkpoint_keys"))
VGGT_KEYS = Path(os.environ.get("POINTMAP_VGGT_KEYS", FIXTURES / "vggt" / "checkpoint_keys.json"))


# ------------------------------------------------------------------ registry

def test_registry_names_and_fields():
    assert registry.names() == [
        "DUSt3R_ViTLarge_BaseDecoder_224_linear", "DUSt3R_ViTLarge_BaseDecoder_512_linear",
        "DUSt3R_ViTLarge_BaseDecoder_512_dpt", "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric", "VGGT-1B"]
    assert registry.DEFAULT in registry.names()
    for name in registry.names():
        spec = registry.get(name)
        assert spec.name == name and spec.family in ("dust3r", "mast3r", "vggt")
        assert spec.description and "\n" not in spec.description
        assert "non-commercial" in spec.license
        assert spec.input_size in (224, 512, 518) and spec.approx_size > 1e9
        assert spec.default_source in spec.sources
        for files in spec.sources.values():
            for f in files:
                assert f.url.startswith("https://") and f.url.endswith("/" + f.filename) and f.approx_size > 0
    assert "VGGT-1B-Commercial" in registry.get("VGGT-1B").license


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

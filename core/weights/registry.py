"""The official checkpoints pointmap knows by name: where to get them, their licences, sizes and input sizes.

Pure data plus three look-ups; importing it needs neither torch nor the network. Downloading is
`core.download.download_checkpoint(name, ...)`.

Each checkpoint can come from one or more *sources* (sets of files that together make a loadable checkpoint):
* "hf": the Hugging Face repository (`config.json` + `model.safetensors` for DUSt3R/MASt3R; VGGT's
  plain state_dict `model.pt`, the file its official demos load);
* "naver": the original `.pth` on download.europe.naverlabs.com (DUSt3R/MASt3R only);
* "hf_safetensors": VGGT's `model.safetensors` (same tensors as `model.pt`).

Depth Anything 3 (family "da3"): `config.json` (its `model_name` names the preset) + `model.safetensors`
from the depth-anything organisation; DA3-Small/Base and DA3Metric/Mono-Large are Apache-2.0, so
`commercial_ok` is True for them (the UI and README mark these).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError

_HF = "https://huggingface.co/{repo}/resolve/main/{file}"
_NAVER = "https://download.europe.naverlabs.com/ComputerVision/{project}/{name}.pth"

NAVER_LICENSE = ("CC BY-NC-SA 4.0 (non-commercial use only; derivatives under the same licence). "
                 "https://creativecommons.org/licenses/by-nc-sa/4.0/")
DA3_APACHE_LICENSE = ("Apache-2.0 (commercial use allowed; keep the licence and NOTICE). "
                      "https://www.apache.org/licenses/LICENSE-2.0")
DA3_NC_LICENSE = ("CC BY-NC 4.0 (non-commercial use only). https://creativecommons.org/licenses/by-nc/4.0/ "
                  "-- DA3-Small, DA3-Base and DA3Metric-Large are Apache-2.0 alternatives.")
VGGT_LICENSE = ("CC BY-NC 4.0 (non-commercial use only). For commercial use Meta publishes the gated checkpoint "
                "facebook/VGGT-1B-Commercial under its VGGT License (same architecture; request access on "
                "Hugging Face and load the downloaded file by path).")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a checkpoint source: the name it gets in the cache folder, its URL, its approximate size,
    and, where known, its exact size in bytes and hex SHA-256 (downloads are checked against them; where
    they are None the server's Content-Length and digest header are used instead)."""

    filename: str
    url: str
    approx_size: int
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class CheckpointSpec:
    """An official checkpoint.

    name:        registry name (also the cache sub-folder)
    family:      "dust3r", "mast3r" or "vggt"
    hf_repo:     Hugging Face repository id
    sources:     source name -> files that together form a loadable checkpoint
    default_source: the source `download_checkpoint` uses unless told otherwise
    license:     licence summary
    approx_size: bytes of the default source's weights (float32)
    input_size:  long side in pixels of the images the network expects (224, 512, 518; DA3: 504)
    description: one line for the UI
    commercial_ok: the licence allows commercial use (Apache-2.0 DA3 models); False for the others
    """

    name: str
    family: str
    hf_repo: str
    sources: dict[str, tuple[RemoteFile, ...]]
    default_source: str
    license: str
    approx_size: int
    input_size: int
    description: str
    commercial_ok: bool = False

    def files(self, source: str | None = None) -> tuple[RemoteFile, ...]:
        """Files of `source` (default: `default_source`)."""
        source = source or self.default_source
        if source not in self.sources:
            raise CheckpointError(f"Checkpoint {self.name} has no source {source!r}; "
                                  f"available: {', '.join(self.sources)}.")
        return self.sources[source]

    @property
    def hf_url(self) -> str:
        return f"https://huggingface.co/{self.hf_repo}"


def _naver_spec(name: str, project: str, family: str, size: int, input_size: int, description: str,
                config_bytes: int) -> CheckpointSpec:
    repo = f"naver/{name}"
    return CheckpointSpec(
        name=name, family=family, hf_repo=repo,
        sources={
            "hf": (RemoteFile("config.json", _HF.format(repo=repo, file="config.json"), config_bytes),
                   RemoteFile("model.safetensors", _HF.format(repo=repo, file="model.safetensors"), size)),
            "naver": (RemoteFile(f"{name}.pth", _NAVER.format(project=project, name=name), size),),
        },
        default_source="hf", license=NAVER_LICENSE, approx_size=size, input_size=input_size,
        description=description)


# Sizes: float32 bytes of the unique tensors (tests/fixtures/checkpoint_keys/*.json), rounded up for headers.
# Digests: no entry carries a registry SHA-256 yet, so every download is checked against the size and the
# SHA-256 that Hugging Face sends for the file (X-Linked-Etag / ETag). A search of stored public pages (no
# network here) found no file page of the official repositories (naver/*, facebook/VGGT-1B, depth-anything/*)
# giving a digest; third-party mirrors of the naver .pth files disagree with each other (512_dpt: 5e8bbf0c...
# at 2,285,019,929 bytes in several Spaces, 9f194a32... at 2,285,005,731 in another; 224_linear: b568afec...
# vs 6bcd6be6...), so none of them is taken as the official file's digest.
_SPECS = (
    _naver_spec("DUSt3R_ViTLarge_BaseDecoder_224_linear", "DUSt3R", "dust3r", 2_130_000_000, 224,
                "DUSt3R ViT-L/16 encoder, ViT-B decoder, linear head, 224x224 inputs; fastest DUSt3R.", 453),
    _naver_spec("DUSt3R_ViTLarge_BaseDecoder_512_linear", "DUSt3R", "dust3r", 2_130_000_000, 512,
                "DUSt3R ViT-L/16 encoder, ViT-B decoder, linear head, 512-pixel inputs.", 453),
    _naver_spec("DUSt3R_ViTLarge_BaseDecoder_512_dpt", "DUSt3R", "dust3r", 2_285_000_000, 512,
                "DUSt3R ViT-L/16 encoder, ViT-B decoder, DPT head, 512-pixel inputs; the most accurate DUSt3R.",
                450),
    _naver_spec("MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric", "MASt3R", "mast3r", 2_755_000_000, 512,
                "MASt3R: DUSt3R with metric-scale pointmaps and local descriptors for matching; 512-pixel inputs.",
                546),
    CheckpointSpec(
        name="VGGT-1B", family="vggt", hf_repo="facebook/VGGT-1B",
        sources={
            "hf": (RemoteFile("model.pt", _HF.format(repo="facebook/VGGT-1B", file="model.pt"), 5_026_200_000),),
            "hf_safetensors": (RemoteFile("model.safetensors",
                                          _HF.format(repo="facebook/VGGT-1B", file="model.safetensors"),
                                          5_026_200_000),),
        },
        default_source="hf", license=VGGT_LICENSE, approx_size=5_026_200_000, input_size=518,
        description="VGGT 1B: cameras, depth and points for all images in one pass (no pairwise alignment); "
                    "518-pixel inputs."),
)

def _da3_spec(name: str, params: int, commercial_ok: bool, description: str) -> CheckpointSpec:
    """A DA3 repository: config.json + float32 model.safetensors (size = 4 bytes per stored parameter)."""
    repo = f"depth-anything/{name}"
    size = params * 4 + 200_000   # + the safetensors header
    return CheckpointSpec(
        name=name, family="da3", hf_repo=repo,
        sources={"hf": (RemoteFile("config.json", _HF.format(repo=repo, file="config.json"), 3_200),
                        RemoteFile("model.safetensors", _HF.format(repo=repo, file="model.safetensors"), size))},
        default_source="hf", license=DA3_APACHE_LICENSE if commercial_ok else DA3_NC_LICENSE, approx_size=size,
        input_size=504, description=description, commercial_ok=commercial_ok)


# Parameter counts: the reference modules built at full size (tests/fixtures/da3/checkpoint_keys.json).
_SPECS = _SPECS + (
    _da3_spec("DA3-SMALL", 34_299_463, True,
              "Depth Anything 3 Small: depth and cameras for any number of views in one pass; Apache-2.0."),
    _da3_spec("DA3-BASE", 135_366_599, True,
              "Depth Anything 3 Base: depth and cameras for any number of views in one pass; Apache-2.0."),
    _da3_spec("DA3-LARGE-1.1", 410_941_767, False,
              "Depth Anything 3 Large: any-view depth and cameras, more accurate than Base; non-commercial."),
    _da3_spec("DA3-GIANT-1.1", 1_355_674_125, False,
              "Depth Anything 3 Giant: the most accurate any-view DA3; non-commercial."),
    _da3_spec("DA3METRIC-LARGE", 334_171_394, True,
              "Depth Anything 3 Metric Large: one image, depth in metres; Apache-2.0."),
    _da3_spec("DA3MONO-LARGE", 334_171_394, True,
              "Depth Anything 3 Mono Large: one image, relative depth; Apache-2.0."),
    _da3_spec("DA3NESTED-GIANT-LARGE-1.1", 1_689_845_519, False,
              "Depth Anything 3 Nested: any-view Giant aligned to metric Large, cameras and depth in metres; "
              "non-commercial."),
)

_BY_NAME = {spec.name: spec for spec in _SPECS}

# What new users are offered first (preferences, CLI --download, the default run once downloaded). The most
# capable checkpoint whose licence allows commercial work: every DUSt3R/MASt3R/VGGT-1B and the DA3 Large/Giant/
# Nested weights are non-commercial; of the Apache-2.0 ones only DA3-Small and DA3-Base predict cameras for
# several views (Metric/Mono-Large see one image at a time), and Base is the larger of the two (the DA3
# authors report it the more accurate) at a 0.54 GB download. With nothing downloaded and nothing named the bundled demo model still runs offline
# (core.weights.resolve).
DEFAULT = "DA3-BASE"


def names() -> list[str]:
    """Registered checkpoint names, in display order: the default first (a dynamic Blender enum's initial
    value is its first item), then the registry order."""
    return [DEFAULT, *(spec.name for spec in _SPECS if spec.name != DEFAULT)]


def get(name: str) -> CheckpointSpec:
    """The spec called `name` (exact, or case-insensitive). Raises CheckpointError for unknown names."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    folded = {n.lower(): s for n, s in _BY_NAME.items()}
    if name.lower() in folded:
        return folded[name.lower()]
    raise CheckpointError(f"Unknown checkpoint name {name!r}; known: {', '.join(names())}.")


def resolve(name_or_path: str | Path) -> CheckpointSpec | Path:
    """A registered name -> its CheckpointSpec; an existing file or folder -> its Path.

    Names win over paths only when no such path exists. Raises CheckpointError otherwise.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return path
    try:
        return get(text)
    except CheckpointError:
        raise CheckpointError(f"{text!r} is neither an existing checkpoint file/folder nor a known checkpoint name "
                              f"({', '.join(names())}).") from None

"""Network definitions (DUSt3R / MASt3R here; VGGT in `vggt/`).

`build_model(class_name, kwargs)` rebuilds a pairwise network from the reference constructor name and
keyword arguments (as parsed from a checkpoint's `args.model` string or a Hugging Face config.json).
torch is imported on first use only, so `import pointmap.core.models` stays cheap.
"""

from __future__ import annotations

from ..llvm_guard import guard_triton

# The model modules import timm (→ torchvision → torch._dynamo → triton): see core/llvm_guard.py.
guard_triton()

PAIRWISE_CLASSES = ("AsymmetricCroCo3DStereo", "AsymmetricMASt3R")


def build_model(class_name: str, kwargs: dict):
    """A randomly initialised `AsymmetricCroCo` network (torch.nn.Module) for the reference class `class_name`
    ("AsymmetricCroCo3DStereo" = DUSt3R, "AsymmetricMASt3R" = MASt3R) and its constructor `kwargs`.

    Its `state_dict()` has the reference keys, shapes and order (DPT alias keys included), so an official
    state_dict loads with strict=True. Works under `with torch.device("meta"):`. Raises CheckpointError
    for an unknown class, unknown arguments or unsupported settings. Attributes: `family` ("dust3r" or
    "mast3r"), `config` (the kwargs), `patch_size` (16).
    """
    from .croco import AsymmetricCroCo

    return AsymmetricCroCo(class_name, dict(kwargs))


__all__ = ["PAIRWISE_CLASSES", "build_model"]

"""Which checkpoint a run uses: an explicit path, a registry name found in the weights cache, or one
clear error saying how to get it. The one place that resolves checkpoints: `reconstruct()`, the
operator, the CLI and the demo all call `resolve_checkpoint`."""

from __future__ import annotations

import os

from ..errors import CheckpointError

WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin")


def default_name() -> str:
    """The registry's default checkpoint name."""
    from . import registry

    return registry.DEFAULT


def cached_path(name: str, cache_dir: str) -> str | None:
    """Where a downloaded registry checkpoint lies in `cache_dir` (`<cache_dir>/<name>/`), or None."""
    if not cache_dir:
        return None
    from .download import cached_checkpoint

    found = cached_checkpoint(name, cache_dir)
    return str(found) if found else None


def how_to_get(name: str, cache_dir: str) -> str:
    """A sentence telling the user how to obtain registry checkpoint `name`."""
    from . import registry

    spec = registry.get(name)
    files = spec.files()
    where = os.path.join(cache_dir, spec.name) if cache_dir else f"a folder named {spec.name}"
    urls = " and ".join(f.url for f in files)
    return (f"The weights of '{spec.name}' are not downloaded: use Download Weights in the Pointmap add-on "
            f"preferences, or fetch {urls} into '{where}', or point the checkpoint option at a local "
            f"checkpoint file or folder.")


def resolve_checkpoint(explicit: str, default: str = "", cache_dir: str = "") -> str:
    """A local path to load: `explicit`, else `default` (preferences), else the registry default.

    Raises CheckpointError naming the problem when nothing usable is on disk.
    """
    name = (explicit or default or default_name()).strip()
    if not name:
        raise CheckpointError("No checkpoint is chosen: pick one (and use Download Weights) in the Pointmap "
                              "add-on preferences, or give a local checkpoint file.")
    path = os.path.expanduser(name)
    if os.path.exists(path):
        return os.path.abspath(path)
    from . import registry

    if os.sep in name or "/" in name or name.endswith(WEIGHT_SUFFIXES):
        raise CheckpointError(f"The checkpoint '{name}' does not exist.")
    try:
        registry.get(name)
    except CheckpointError:
        raise CheckpointError(f"'{name}' is neither a file nor a known checkpoint name "
                              f"(known: {', '.join(registry.names())}).") from None
    found = cached_path(name, cache_dir)
    if found:
        return found
    raise CheckpointError(how_to_get(name, cache_dir))

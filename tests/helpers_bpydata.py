"""What a test compares to prove Blender was left as it was: the names in every bpy.data collection."""

from __future__ import annotations


def datablock_names() -> dict[str, list[str]]:
    """{collection attribute of bpy.data ("objects", "images", "node_groups", ...): sorted names}.

    Names, not counts: a failed run that removed one datablock and added another would keep the counts.
    """
    import bpy

    out = {}
    for attr in dir(bpy.data):
        coll = getattr(bpy.data, attr, None)
        if isinstance(coll, bpy.types.bpy_prop_collection):
            out[attr] = sorted(getattr(item, "name", "") for item in coll)
    return out

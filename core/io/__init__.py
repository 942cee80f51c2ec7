"""Image loading and file formats (PLY, COLMAP, ...). No bpy."""

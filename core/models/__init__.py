"""Network definitions (DUSt3R / MASt3R, VGGT). Filled in by the model work."""

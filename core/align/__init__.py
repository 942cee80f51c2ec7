"""Global alignment: initialisation, refinement and geometry."""

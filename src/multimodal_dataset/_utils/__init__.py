"""Small helpers every layer uses: argument checks, optional imports, pickling, lazy names."""

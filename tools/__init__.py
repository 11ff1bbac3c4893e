"""Project tooling that is not part of the package (README generation)."""

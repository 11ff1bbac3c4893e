"""Project tooling that is not part of the package: the documentation site's hooks and
browser check, and its pictures."""

"""The portability check: the same data, model and ``.keras`` file on every backend.

``python -m portability train|check|report [--quick] [--check]`` in each backend's venv
(``nox -s portability`` runs them all; the documentation site includes the report, in
``docs/explanation/portability.md``).
"""

"""Benchmarks of multimodal-dataset against the loaders a Keras user would otherwise use.

Run in each backend's venv with ``python -m benchmarks --backend jax [--quick]``, then
``python -m benchmarks.report`` merges the parts into ``results/latest.{json,md,png}``
(``nox -s bench`` does both; the documentation site includes the table).
"""

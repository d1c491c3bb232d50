"""Tooling that ships with the repository but not in the product wheel.

Role: code that tests, benchmarks and generators share — ``synthetic`` (slim records and a scripted JobSet life
fed straight into the metrics hooks, for unit tests, the Prometheus query check and the metrics benchmark),
``dashboards`` (the generator of ``deploy/grafana/*.json`` and ``deploy/prometheus/jobset-alerts.yaml``; run
``python -m tools.dashboards [--check]`` from the repository root), ``gendocs`` (the generated reference pages
of ``docs/``) and ``drift`` (the write / ``--check`` command line those two generators share).

Invariants: the product (``api``, ``cache``, ``controller``, ``metrics``, ``kubesim``) never imports ``tools``
(import-linter: ``tools`` is the top layer); ``tools`` is not packaged (``[tool.setuptools.packages.find]``
leaves it out), yet ruff, mypy --strict and import-linter check it like the product.
"""

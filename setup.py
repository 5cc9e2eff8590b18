"""Packaging: every ``bridge`` package, plus the default theme as package data.

The theme stays at the top of the checkout (``site_template/``, where themes.md sends a
designer) and is mapped into the wheel as ``bridge/site_template/``, so ``pip install .``
(without ``-e``) ships the templates and static files that ``init`` and ``build`` need.
Everything else about the package is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["bridge", "bridge.*"]), "bridge.site_template"],
    package_dir={"bridge.site_template": "site_template"},
    package_data={"bridge.site_template": ["templates/*.html", "static/*", "static/**/*"]},
)

"""Kept for Beam's --setup_file, which must name a setup.py: the project's metadata is in pyproject.toml.

Beam's stager builds an sdist from this folder (`python -m build --sdist`, else `python setup.py
sdist`) and the Dataflow workers install it, when no worker image is given (pipelines/catalog.py).
"""

from setuptools import setup

setup()

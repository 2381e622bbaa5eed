"""Build script for the stdeb route (tools/stdeb-build); metadata lives in setup.cfg."""

from setuptools import setup

setup()

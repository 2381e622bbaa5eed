"""Build script; metadata lives in setup.cfg.

``python3 setup.py build_manpages`` regenerates man/memccp.1 from the argparse
parser when argparse-manpage is installed; nothing else needs it.
"""

from setuptools import setup

cmdclass = {}
try:
    from build_manpages.build_manpages import build_manpages
except ImportError:  # argparse-manpage is only needed to regenerate the man page
    pass
else:
    cmdclass["build_manpages"] = build_manpages

setup(cmdclass=cmdclass)

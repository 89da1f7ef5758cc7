"""emolib: the helper package behind the emotion-recognition study notebooks.

Import submodules explicitly (``from emolib import config, data``); importing the package
itself loads nothing heavy and has no side effects.
"""

__version__ = "0.1.0"

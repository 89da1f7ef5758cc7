"""The cost analysis of notebook 06, one module per concern:

- ``counting``: parameters and FLOPs per image;
- ``scaling``: inference time against the number of images, timed and fitted;
- ``collect``: every stage's phase records (``emolib.recorder``), through ``emolib.catalog``;
- ``figures``: what notebook 06 draws.

The phase recorder every stage uses is ``emolib.recorder``, at the top level, so that no
import runs back up from a stage into this package.
"""

"""CNN baselines: the model zoo, augmentation, training loop, evaluation and hard subsets.

Import from the submodules (``emolib.train.stage``, ``emolib.train.hard``, ...); importing
this package loads nothing heavy.
"""

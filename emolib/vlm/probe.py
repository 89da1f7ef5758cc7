"""The CLIP linear probe: logistic regression on frozen CLIP image features.

Zero-shot CLIP compares an image with label prompts; the probe asks how much of the emotion
the same image features hold when a classifier is fitted on labelled training faces
(``vlm.probe_train_size``). Its rows carry backend ``clip_probe`` and prompt ``-``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from emolib.data import ImageSet
from emolib.predictions import NO_PROMPT, image_columns, make_predictions


def fit_linear_probe(backend, train: ImageSet, test: ImageSet, c: float, seed: int) -> pd.DataFrame:
    """Fit on ``train``'s features (backend.image_features: (n, d)), predict ``test``:
    a predictions table with per-class probabilities as scores."""
    x_train, x_test = backend.image_features(train.images()), backend.image_features(test.images())
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, train.labels)
    proba = np.zeros((len(test), len(test.label_set)))
    proba[:, clf.classes_] = clf.predict_proba(x_test)
    return make_predictions(**image_columns(test), y_pred=proba.argmax(axis=1), scores=list(proba),
                            model=backend.spec.model, backend="clip_probe", prompt=NO_PROMPT, seed=seed)

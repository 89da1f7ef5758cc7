"""Human evaluation of model errors (notebook 07), one module per concern:

- ``inputs``: the predictions tables and image sets to study;
- ``sampling``: errors drawn stratified by model and error category (EC I-III), saved with images;
- ``annotations``: one CSV per annotator, atomic writes, blinded choice -> verdict;
- ``annotator``: the ipywidgets annotator for JupyterLab;
- ``sheets``: self-contained CSV + HTML sheets for annotators outside Jupyter, and their import;
- ``agreement``: Cohen's / Fleiss' kappa, Krippendorff's alpha, humans siding with the model;
- ``plausibility``: how many human votes a "wrong" predicted label got (FER+, Emotion6).

Nothing is imported here, so ``import emolib.human_eval`` stays cheap and side-effect free.
"""

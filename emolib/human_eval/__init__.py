"""Human evaluation of model errors (notebook 07), one module per concern:

- ``stage``: the predictions (every model of notebooks 03 and 04, via ``emolib.catalog``) and images;
- ``categories``: error categories EC I-III from each label's sentiment and arousal;
- ``sampling``: errors drawn stratified by backend, model and error category, saved with images;
- ``annotations``: one CSV per annotator, atomic writes, blinded choice -> verdict;
- ``annotator``: the ipywidgets annotator for JupyterLab;
- ``sheets``: self-contained CSV + HTML sheets for annotators outside Jupyter, and their import;
- ``agreement``: Cohen's / Fleiss' kappa, Krippendorff's alpha, humans siding with the model;
- ``plausibility``: how many human votes a "wrong" predicted label got (FER+, Emotion6);
- ``alike``: do CNNs and GPT-4V err alike? categories, vote plausibility and overlap of the
  faces each gets wrong, on the same ids;
- ``figures``: the figures that need more than one seaborn call.

Nothing is imported here, so ``import emolib.human_eval`` stays cheap and side-effect free.
"""

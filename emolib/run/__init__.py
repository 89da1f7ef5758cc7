"""The entry points, on the top floor: ``cli`` (the ``emolib`` command: fetch, plan), ``plan``
(what a profile will run), ``runstate`` (which notebooks ``run_all.sh`` runs again),
``notebook_params`` (the notebooks' parameters), ``report`` and ``headlines`` (the browsable
report and its headline numbers). Nothing below imports them."""

"""Notebook parameters: a name a notebook does not declare stops the run, naming it.

papermill runs a notebook with any parameter it is given: an unknown one (``-p profil_name smoke``,
``-y '{overides: ...}'``) is only logged ("Passed unknown parameter") and the notebook runs
with its defaults, e.g. the quick profile. So every notebook calls, in the code cell after its
``parameters`` cell::

    check_parameters(globals(), declared=["profile_name", "overrides"])

which reads the cell papermill injected (the latest entry of IPython's input history ``In``
whose first line is papermill's ``# Parameters``) and raises ``UnknownParameter`` naming every
name in it that the notebook does not declare. This holds for ``run_all.sh`` and for any
papermill call of the user's own (CLI or ``papermill.execute_notebook``). A notebook run by hand
in Jupyter has no injected cell, so there is nothing to check. Before any notebook runs,
``run_all.sh`` also checks the parameters it passes against each notebook's parameters cell
(``check_passed``, through ``papermill.inspect_notebook``).
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

INJECTED_HEADER = "# Parameters"  # papermill's first line of the cell it injects (Python kernels)
# names papermill itself may inject (--inject-input-path / --inject-output-path / --inject-paths)
PAPERMILL_NAMES = ("PAPERMILL_INPUT_PATH", "PAPERMILL_OUTPUT_PATH")


class UnknownParameter(ValueError):
    """A parameter was passed that the notebook does not declare (or a declared one is missing)."""


def injected_names(history: Sequence[str]) -> list[str]:
    """The names assigned by the latest papermill-injected cell in ``history`` (cell sources
    in execution order, IPython's ``In``), in order; ``[]`` when no cell was injected."""
    for source in reversed(history):
        if source.lstrip().splitlines()[:1] == [INJECTED_HEADER]:
            tree = ast.parse(source)
            return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)]
    return []


def unknown_message(unknown: Iterable[str], declared: Sequence[str], where: str) -> str:
    """'unknown parameter 'profil_name' (did you mean 'profile_name'?) ...' for ``where`` (a notebook)."""
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"unknown parameter {', '.join(parts)} passed to {where}; it takes only "
            f"{', '.join(declared)}; the run stops here rather than go on with the defaults.")


def check_parameters(namespace: Mapping[str, object], declared: Sequence[str],
                     where: str = "this notebook") -> list[str]:
    """Stop a notebook run that was given a parameter it does not declare.

    ``namespace``: the notebook's ``globals()`` (IPython keeps the input history in ``In``);
    ``declared``: the names of the notebook's parameters cell. Returns the injected names
    (``[]`` outside papermill); raises ``UnknownParameter`` naming each unknown one, or when a
    declared parameter is not defined (the parameters cell did not run).
    """
    missing = [name for name in declared if name not in namespace]
    if missing:
        raise UnknownParameter(f"parameter(s) {missing} of {where} are not defined: run its parameters cell first")
    # a plain Python run (no IPython) has no input history and so no injected cell
    names = injected_names(namespace.get("In", ()))
    unknown = [n for n in names if n not in declared and n not in PAPERMILL_NAMES]
    if unknown:
        raise UnknownParameter(unknown_message(unknown, declared, where))
    return names


def declared_parameters(notebook: Path) -> list[str]:
    """The parameter names of a notebook's ``parameters`` cell (``papermill.inspect_notebook``)."""
    import papermill

    return list(papermill.inspect_notebook(str(notebook)))


def check_passed(notebook: Path, passed: Iterable[str]) -> None:
    """Raise ``UnknownParameter`` when ``passed`` names a parameter ``notebook`` does not declare."""
    declared = declared_parameters(notebook)
    unknown = [name for name in passed if name not in declared]
    if unknown:
        raise UnknownParameter(unknown_message(unknown, declared, Path(notebook).name))

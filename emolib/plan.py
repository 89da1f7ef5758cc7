"""What a profile will run, stage by stage, before anything runs: ``emolib plan PROFILE``.

One row per step in notebook order: the stage, what it loads (one model resident at a time),
on which device, on which named subset and how many images or epochs. Nothing is loaded or
computed: the plan is read from the profile alone, so a GPU profile can be planned on a laptop.
"""

from __future__ import annotations

import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.prompts.sweep import order_name, sample_name
from emolib.vlm.base import model_specs
from emolib.vlm.recorded_files import recorded_file_subset

COLUMNS = ["step", "notebook", "stage", "what", "device", "on"]


def profile_plan(profile: Profile, device: str) -> pd.DataFrame:
    """The steps of ``profile`` with ``device`` the resolved device (``devices.resolve_device``).
    Every data set of the profile (``data.all_sets``) is named: the evoked ones in the subsets
    the VLMs score and the prompt sweep draws, each ``vlm.recorded_files`` entry in a row."""
    nb, eval_name = catalog.NOTEBOOKS, catalog.fer_eval_name(profile)
    sets = profile.data.all_sets()
    evoked = [catalog.evoked_eval_name(profile, s.name) for s in sets if s.role == "evoked"]
    rows = [("data", "load, audit and define the named subsets", "cpu", ", ".join(s.name for s in sets))]
    rows += [("restoration", f"restore with {b}", device if b.startswith("gfpgan") else "cpu", eval_name)
             for b in dict.fromkeys([profile.restoration.selected, *profile.restoration.eval_backends]) if b != "none"]
    for seed in profile.cnn.seeds:
        for name in profile.cnn.models:
            epochs = profile.cnn.epochs_of(name)
            rows.append(("cnn", f"train {name} (seed {seed}, {epochs} epochs), then predict", device,
                         f"Training; fer_private and {eval_name}"))
    rows.append(("hard", "probe for the hard subsets", "cpu", "fer_hard, emotion6_hard"))
    rows += [("vlm", f"replay {spec}'s recorded answers", "none", "the images its recording covers")
             if spec.backend == "recorded" else
             ("vlm", f"load {spec}, predict, free", "api" if spec.backend == "openai" else device,
              ", ".join([eval_name, *evoked])) for spec in model_specs(profile.vlm)]
    rows += [("vlm", f"score recorded:{f.model}'s answers on {f.set} ({f.path})", "none",
              recorded_file_subset(f.set, f.model)) for f in profile.vlm.recorded_files]
    swept = [n for s in profile.prompt_sets() for n in (sample_name(profile, s.name), order_name(profile, s.name))]
    rows += [("prompts", f"load {spec}, every prompt variant, free", "api" if spec.backend == "openai" else device,
              ", ".join(swept)) for spec in model_specs(profile.vlm) if spec.backend in ("hf", "openai")]
    rows += [("cost", f"time inference against images, model by model ({profile.cost.scaling_threads} thread(s))",
              "cpu", "synthetic images"),
             ("human_eval", "sample errors, annotate, consistency check", "cpu", "every model's predictions")]
    return pd.DataFrame([{"step": i + 1, "notebook": nb[stage], "stage": stage, "what": what, "device": dev, "on": on}
                         for i, (stage, what, dev, on) in enumerate(rows)], columns=COLUMNS)

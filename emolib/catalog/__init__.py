"""The one map of what every stage writes for a profile, and the check that they agree.

Every stage finds its own folder here and every consumer finds an upstream output here:
store folders (``results/<profile>/<stage>/<config hash>/``), predictions tables, the named
evaluation subsets (ids, not pixels) and the folders whose cost records count. Nothing is
looked up by module-name string. A missing upstream output raises ``MissingUpstream``
naming the notebook to run first (or is a visible "not run" row where a table lists it).

Named evaluation subsets (``subset_ids(profile, name)``; every score names one, with n):

- ``fer_private``: every FER-2013 PrivateTest face;
- ``fer_private_leakage_free_exact`` / ``_near``: PrivateTest without the faces that have a
  pixel-identical (or, ``_near``, also a pHash-near) copy in Training (notebook 01's audit);
- ``fer_kaggle_test``: PublicTest and PrivateTest, the Kaggle ``test/`` folder that LAION's
  CLIP_benchmark and MTEB score (7,178 faces), for comparing with their published numbers
  (``emolib.vlm.published``); its rows are never reused for the study's own subsets;
- ``fer_eval_<n>``: the stratified draw of ``data.eval_size`` PrivateTest faces that the
  restoration, CNN and VLM stages all score (original and restored: the same ids);
- ``emotion6_all`` and ``emotion6_eval_<n>``: Emotion6, all and the VLM stage's draw; every
  other evoked set of the profile (``data.sets``) gets ``<name>_all`` and ``<name>_eval_<n>``;
- ``fer_hard``, ``emotion6_hard``: the hard subsets of notebook 03;
- ``fer_private_gpt4v``, ``artphoto_gpt4v``, ...: what recorded answers cover (notebook 04).

``check(profile)`` is the consistency check run at the end of notebook 07 and by the tests.
"""

from emolib.catalog.consistency import ConsistencyError, check, training_wall_s
from emolib.catalog.stores import (
    HARD_DATASETS,
    NOTEBOOKS,
    PREDICTION_STAGES,
    PREDICTIONS_FILE,
    SUBSETS_FILE,
    CostSource,
    MissingUpstream,
    cnn_model_key,
    cnn_model_store,
    cnn_store,
    cost_sources,
    cost_store,
    data_store,
    hard_store,
    human_eval_store,
    missing,
    predictions_path,
    prompts_store,
    read_stage_predictions,
    restoration_cache_dir,
    restoration_record_counts,
    restoration_store,
    stage_hashes,
    study_predictions,
    table_path,
    templates_hash,
    vlm_store,
)
from emolib.catalog.subsets import (
    FER_KAGGLE_TEST,
    KAGGLE_TEST_SPLITS,
    PROTOCOL_SUBSETS,
    data_subset_names,
    emotion6_eval_name,
    evoked_all_name,
    evoked_eval_name,
    fer_eval_name,
    id_problem,
    on_subset,
    on_subsets,
    select_subset,
    subset_ids,
    subset_table,
    write_stage_subset,
    write_subsets,
)

__all__ = [
    "FER_KAGGLE_TEST", "HARD_DATASETS", "KAGGLE_TEST_SPLITS", "NOTEBOOKS", "PREDICTIONS_FILE", "PREDICTION_STAGES",
    "PROTOCOL_SUBSETS", "SUBSETS_FILE", "ConsistencyError",
    "CostSource", "MissingUpstream", "check", "cnn_model_key", "cnn_model_store", "cnn_store", "cost_sources",
    "cost_store", "data_store", "data_subset_names", "emotion6_eval_name", "evoked_all_name", "evoked_eval_name",
    "fer_eval_name", "hard_store", "human_eval_store", "id_problem", "missing", "on_subset", "on_subsets",
    "predictions_path", "prompts_store",
    "read_stage_predictions", "restoration_cache_dir", "restoration_record_counts", "restoration_store",
    "select_subset", "stage_hashes", "study_predictions", "subset_ids", "subset_table", "table_path",
    "templates_hash", "training_wall_s", "vlm_store", "write_stage_subset", "write_subsets",
]

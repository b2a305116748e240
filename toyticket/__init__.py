"""toyticket: lottery tickets in a clause-structured Boolean toy world.

The core of the book: tasks (``tasks``), batched one-hidden-layer networks (``model``), their
training (``training``), how well they compute (``metrics``) and how to read them as
feature-channel codes (``features``). Chapters import this package; heavy work lives here.

Importing it first pins the numerics mode (``toyticket.numerics``): before torch or numba
choose their code paths.
"""

from toyticket import numerics

numerics.pin()

import torch  # noqa: E402

from toyticket.experiments import dense_study, summarize_checkpoints
from toyticket.features import (
    ReaderConfig,
    aligned,
    aligned_weights,
    channel_ablation,
    channels,
    clause_overlap,
    code_distance,
    crowding,
    location_fates,
    proximal,
    readout_weight,
    row_activity,
    selectivity,
    supported,
    unique_witness_inputs,
)
from toyticket.metrics import evaluate, linearization_test, trivial_accuracy
from toyticket.model import (
    ModelConfig,
    Params,
    apply_masks,
    concat_lanes,
    forward,
    hidden,
    init_params,
    select_lanes,
)
from toyticket.planted import planted_network
from toyticket.pruning import SCORING_METHODS, mask_from_scores, score_weights
from toyticket.stats import format_ci, format_table, mean_ci
from toyticket.store import Store, cached, get_store, stored
from toyticket.summary import summarize
from toyticket.tasks import Clause, Task, TaskConfig, build_task, make_task
from toyticket.tickets import (
    DISCOVERY_METHODS,
    Ladder,
    PruningConfig,
    assess_tickets,
    discover,
    imp,
    retrain_many,
    ticket_study,
)
from toyticket.training import Run, TrainConfig, loss_and_grads, train

__all__ = [
    "DISCOVERY_METHODS",
    "SCORING_METHODS",
    "Ladder",
    "PruningConfig",
    "Clause",
    "ModelConfig",
    "Params",
    "ReaderConfig",
    "Run",
    "Store",
    "Task",
    "TaskConfig",
    "TrainConfig",
    "aligned",
    "aligned_weights",
    "apply_masks",
    "build_task",
    "cached",
    "channel_ablation",
    "channels",
    "clause_overlap",
    "code_distance",
    "concat_lanes",
    "dense_study",
    "crowding",
    "evaluate",
    "forward",
    "format_ci",
    "format_table",
    "get_store",
    "grid_points",
    "hidden",
    "init_params",
    "linearization_test",
    "location_fates",
    "loss_and_grads",
    "make_task",
    "mean_ci",
    "planted_network",
    "proximal",
    "readout_weight",
    "row_activity",
    "select_lanes",
    "selectivity",
    "stored",
    "summarize",
    "summarize_checkpoints",
    "run_sweep",
    "supported",
    "assess_tickets",
    "discover",
    "imp",
    "mask_from_scores",
    "retrain_many",
    "score_weights",
    "ticket_study",
    "train",
    "trivial_accuracy",
    "unique_witness_inputs",
]

# toyticket.sweep is imported on first use, not here: `python -m toyticket.sweep` runs it as
# __main__, and runpy warns (RuntimeWarning) when the package has already imported it.
_LAZY = {"grid_points": "toyticket.sweep", "run_sweep": "toyticket.sweep"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'toyticket' has no attribute {name!r}")


# One intra-op thread unless the user set OMP_NUM_THREADS: on a loaded 2-core machine,
# oversubscribed threads made torch more than 20x slower on these tiny matmuls.
import os as _os

if "OMP_NUM_THREADS" not in _os.environ:
    torch.set_num_threads(1)

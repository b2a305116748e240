"""toyticket: lottery tickets in a clause-structured Boolean toy world.

The core of the book: tasks (``tasks``), batched one-hidden-layer networks (``model``), their
training (``training``), how well they compute (``metrics``) and how to read them as
feature-channel codes (``features``). Chapters import this package; heavy work lives here.
"""

import torch

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
from toyticket.stats import format_ci, format_table, mean_ci
from toyticket.summary import summarize
from toyticket.tasks import Clause, Task, TaskConfig, build_task, make_task
from toyticket.training import Run, TrainConfig, loss_and_grads, train

__all__ = [
    "Clause",
    "ModelConfig",
    "Params",
    "ReaderConfig",
    "Run",
    "Task",
    "TaskConfig",
    "TrainConfig",
    "aligned",
    "aligned_weights",
    "apply_masks",
    "build_task",
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
    "summarize",
    "summarize_checkpoints",
    "train",
    "trivial_accuracy",
    "unique_witness_inputs",
]

# One intra-op thread unless the user set OMP_NUM_THREADS: on a loaded 2-core machine,
# oversubscribed threads made torch more than 20x slower on these tiny matmuls.
import os as _os

if "OMP_NUM_THREADS" not in _os.environ:
    torch.set_num_threads(1)

"""Studies that chapters run: each trains batched ensembles through ``training.train`` and
returns per-network numbers (one entry per task seed x network seed).

Their units of work are kept in the results store (``toyticket.store``): rerunning a chapter
reads them back, and a killed run resumes from the last finished unit."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from toyticket.features import ReaderConfig
from toyticket.model import ModelConfig
from toyticket.store import stored
from toyticket.summary import SUMMARY_CODE, summarize
from toyticket.tasks import Task, TaskConfig, build_task
from toyticket.training import Run, TrainConfig, train
from toyticket.validation import check_config, check_device, check_instance, check_seeds, check_task

# The modules whose code determines a dense unit (its store version hashes their source).
DENSE_CODE = (*SUMMARY_CODE, __name__)


@stored("dense_unit", code=DENSE_CODE)
def dense_unit(
    task: TaskConfig,
    model: ModelConfig,
    training: TrainConfig,
    seeds: tuple[int, ...],
    reader: ReaderConfig,
    device: str,
) -> dict[str, torch.Tensor]:
    """One unit of work, one store entry: train ``seeds`` on the task that ``task`` determines and
    summarize the final networks ({name: [len(seeds)]}, see ``summarize``). Call it through
    ``dense_study`` or ``unit_arguments``, which normalize the arguments."""
    drawn = build_task(task)
    run = train(drawn, model, training, seeds, device=device)
    return summarize(run.final, drawn, reader, initial=run.checkpoints[0])


def unit_arguments(
    task: TaskConfig,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    reader: ReaderConfig = ReaderConfig(),
    device: str = "cpu",
) -> tuple:
    """The arguments of ``dense_unit`` for one task, validated and normalized so that calls
    that give the same networks share one store entry: seeds become a tuple, and the
    ``TrainConfig`` fields that do not change the final weights (``checkpoints``,
    ``log_every``) are reset to their defaults."""
    check_config("task", task, TaskConfig)
    check_config("model", model, ModelConfig)
    check_config("training", training, TrainConfig)
    seeds = check_seeds("seeds", seeds)
    check_config("reader", reader, ReaderConfig)
    check_device("device", device)
    final_only = dataclasses.replace(training, checkpoints=(), log_every=TrainConfig.log_every)
    return task, model, final_only, seeds, reader, device


def training_arguments(arguments: dict) -> dict:
    """The door of a stored computation of one training setting, called with its arguments by
    name: ``task`` (a drawn ``Task``), ``model``, ``training`` and ``seeds`` are checked
    before the store is touched, and the seeds become a tuple (the same key as a list).
    Returns a copy; other arguments pass through."""
    a = dict(arguments)
    check_task("task", a["task"])
    check_config("model", a["model"], ModelConfig)
    check_config("training", a["training"], TrainConfig)
    a["seeds"] = check_seeds("seeds", a["seeds"])
    return a


def dense_study(
    task: TaskConfig,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    task_seeds: Sequence[int] = (0,),
    reader: ReaderConfig = ReaderConfig(),
    *,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Train ``len(seeds)`` networks on each task drawn with ``task_seeds`` (``task.seed`` is
    replaced) and summarize every trained network: {name: [len(task_seeds) * len(seeds)]}.

    Each task seed is one ``dense_unit``, read from the results store when it is there.
    ``progress``: a progress bar over task seeds (off by default: chapters are compared
    with their reference outputs)."""
    # every argument is checked before the first unit trains
    _, model, training, seeds, reader, device = unit_arguments(
        task, model, training, seeds, reader, device
    )
    task_seeds = check_seeds("task_seeds", task_seeds)
    parts = []
    for task_seed in tqdm(task_seeds, disable=not progress, desc="dense_study"):
        one = dataclasses.replace(task, seed=task_seed)
        parts.append(dense_unit(one, model, training, seeds, reader, device))
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def summarize_checkpoints(
    run: Run, task: Task, reader: ReaderConfig = ReaderConfig()
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summaries along training: the checkpoint steps [T] and {name: [T, S]}."""
    check_instance("run", run, Run, " (what tt.train returns)")
    check_task("task", task)
    check_config("reader", reader, ReaderConfig)
    steps = sorted(run.checkpoints)
    initial = run.checkpoints[steps[0]]
    rows = [summarize(run.checkpoints[t], task, reader, initial=initial) for t in steps]
    return torch.tensor(steps), {name: torch.stack([r[name] for r in rows]) for name in rows[0]}

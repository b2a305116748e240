"""Studies that chapters run: each trains batched ensembles through ``training.train`` and
returns per-network numbers (one entry per task seed x network seed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from toyticket.features import ReaderConfig
from toyticket.model import ModelConfig
from toyticket.summary import summarize
from toyticket.tasks import Task, TaskConfig, build_task
from toyticket.training import Run, TrainConfig, train


def dense_study(
    task: TaskConfig,
    model: ModelConfig,
    training: TrainConfig,
    seeds: Sequence[int],
    task_seeds: Sequence[int] = (0,),
    reader: ReaderConfig = ReaderConfig(),
) -> dict[str, torch.Tensor]:
    """Train ``len(seeds)`` networks on each task drawn with ``task_seeds`` (``task.seed`` is
    replaced) and summarize every trained network: {name: [len(task_seeds) * len(seeds)]}."""
    if len(task_seeds) == 0:
        raise ValueError("task_seeds must hold at least one seed")
    parts = []
    for task_seed in task_seeds:
        drawn = build_task(dataclasses.replace(task, seed=task_seed))
        run = train(drawn, model, training, seeds)
        parts.append(summarize(run.final, drawn, reader))
    return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}


def summarize_checkpoints(
    run: Run, task: Task, reader: ReaderConfig = ReaderConfig()
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summaries along training: the checkpoint steps [T] and {name: [T, S]}."""
    steps = sorted(run.checkpoints)
    rows = [summarize(run.checkpoints[t], task, reader) for t in steps]
    return torch.tensor(steps), {name: torch.stack([r[name] for r in rows]) for name in rows[0]}

"""Sweeps: the dense study over a grid of parameters, written into the results store.

From the command line::

    python -m toyticket.sweep --grid GRID.yaml                 # one process, a plain loop
    python -m toyticket.sweep --grid GRID.yaml --workers 4     # 4 local processes (Dask)
    python -m toyticket.sweep --grid GRID.yaml --scheduler tcp://host:8786   # a Dask cluster
    python -m toyticket.sweep --grid GRID.yaml --list          # the points, and which are stored

or from Python: ``toyticket.run_sweep(grid)``, with ``grid`` a mapping or a YAML file path.

A grid file::

    study: dense            # the study to run (the only one so far)
    seeds: 16               # network seeds: a count n (seeds 0..n-1) or a list of seeds
    device: cpu
    task:                   # TaskConfig fields; a list is an axis of the grid
      readout: groups
      seed: [0, 1, 2, 3, 4] # task seeds
    model:                  # ModelConfig fields
      width: [4, 8, 16]
    training:               # TrainConfig fields
      steps: 2000
      lr: 0.02
    reader: {}              # ReaderConfig fields

The grid is the product of all axes (a field whose value is a list). To give a tuple-valued
field (``training.checkpoints``) one value, wrap it in a list: ``checkpoints: [[10, 50]]``.
Every point is one ``experiments.dense_unit``: one batched training of all the seeds on one task
and its summaries, stored under the same identity as when a chapter's ``dense_study`` computes
it. A sweep therefore precomputes chapters (a chapter reads what a sweep wrote, and the other
way round), and a killed sweep resumes: points already stored are not recomputed.

With ``--workers`` or ``--scheduler`` the points are computed by Dask distributed workers
(``dask.distributed.Client``), which need this package installed at the same version and the
same number of torch threads (1 by default): a worker that differs is an error. Workers do not
write the store; they return results and this process writes them, so workers need no shared
file system.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from toyticket.experiments import dense_unit, unit_arguments
from toyticket.features import ReaderConfig
from toyticket.model import ModelConfig
from toyticket.store import Entry, Store, get_store
from toyticket.summary import SUMMARY_NAMES
from toyticket.tasks import TaskConfig
from toyticket.training import TrainConfig
from toyticket.validation import (
    check_choice,
    check_choices,
    check_device,
    check_int,
    check_seeds,
    check_store,
    read_yaml,
    show,
    wrong_type,
)

STUDIES = ("dense",)
SECTIONS: dict[str, type] = {
    "task": TaskConfig,
    "model": ModelConfig,
    "training": TrainConfig,
    "reader": ReaderConfig,
}
TOP_LEVEL = ("study", "seeds", "device", *SECTIONS)


@dataclass(frozen=True)
class Point:
    """One point of a grid: the arguments of one ``dense_unit`` and the values of the axes
    with more than one value (``label``: (("section.field", value), ...)) that single it out."""

    task: TaskConfig
    model: ModelConfig
    training: TrainConfig
    seeds: tuple[int, ...]
    reader: ReaderConfig
    device: str
    label: tuple[tuple[str, Any], ...]

    def arguments(self) -> tuple:
        """The normalized arguments of ``dense_unit`` (see ``experiments.unit_arguments``)."""
        return unit_arguments(
            self.task, self.model, self.training, self.seeds, self.reader, self.device
        )

    def entry(self) -> Entry:
        """The point's identity in the results store."""
        return dense_unit.entry(*self.arguments())

    def name(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.label) or "(single point)"


@dataclass
class SweepResult:
    """A point and its summaries ({name: [len(seeds)]}); ``source``: "stored" or "computed"."""

    point: Point
    result: dict[str, torch.Tensor]
    source: str


# --------------------------------------------------------------------------- grids


def load_grid(grid: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A grid as a mapping: read from a YAML file when given a path."""
    if isinstance(grid, str | os.PathLike):
        grid = read_yaml("grid", grid) or {}
    if not isinstance(grid, Mapping):
        raise wrong_type("grid", grid, "a mapping of section -> values (or a YAML file of one)")
    return dict(grid)


def grid_points(grid: Mapping[str, Any] | str | Path) -> list[Point]:
    """Every point of a grid, validated (unknown sections or fields, bad values: ValueError or
    TypeError naming them), in a fixed order: the last axis varies fastest."""
    grid = load_grid(grid)
    unknown = sorted(set(grid) - set(TOP_LEVEL))
    if unknown:
        raise ValueError(
            f"grid: unknown section(s) {', '.join(map(str, unknown))}; allowed: "
            f"{', '.join(TOP_LEVEL)}"
        )
    check_choice("grid study", grid.get("study", "dense"), STUDIES)
    seeds = grid.get("seeds", 8)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = tuple(range(check_int("grid seeds", seeds, 1)))
    seeds = check_seeds("grid seeds", seeds)
    device = check_device("grid device", grid.get("device", "cpu"))

    fixed: dict[str, dict[str, Any]] = {}
    axes: list[tuple[str, str, list[Any]]] = []
    for section, cls in SECTIONS.items():
        values = grid.get(section) or {}
        if not isinstance(values, Mapping):
            raise wrong_type(f"grid section {section}", values, "a mapping of field: value")
        allowed = [f.name for f in dataclasses.fields(cls)]
        bad = sorted(set(values) - set(allowed))
        if bad:
            raise ValueError(
                f"grid section {section!r}: unknown field(s) {', '.join(map(str, bad))}; "
                f"{cls.__name__} has: {', '.join(allowed)}"
            )
        fixed[section] = {}
        for name, value in values.items():
            if isinstance(value, list):
                if not value:
                    raise ValueError(
                        f"grid axis {section}.{name}=[] is an empty list: allowed at least one "
                        "value"
                    )
                axes.append((section, name, [_tuples(v) for v in value]))
            else:
                fixed[section][name] = _tuples(value)

    points = []
    for combo in itertools.product(*(values for _, _, values in axes)):
        fields = {section: dict(values) for section, values in fixed.items()}
        for (section, name, _), value in zip(axes, combo, strict=True):
            fields[section][name] = value
        configs = {}
        for section, cls in SECTIONS.items():
            try:
                configs[section] = cls(**fields[section])
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"grid section {section!r}: {exc}") from exc
        label = tuple(
            (f"{section}.{name}", value)
            for (section, name, values), value in zip(axes, combo, strict=True)
            if len(values) > 1
        )
        points.append(Point(**configs, seeds=seeds, device=device, label=label))
    return points


def _tuples(value: Any) -> Any:
    """YAML lists inside a value (e.g. checkpoints) as tuples, as the configs keep them."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- running


def run_unit(arguments: tuple) -> tuple[str, dict[str, torch.Tensor]]:
    """What a worker runs: (its environment, ``dense_unit`` computed without the store)."""
    return _environment(), dense_unit.fn(*arguments)


def _environment() -> str:
    """What must be the same here and on a worker: the code version and the torch threads."""
    return f"code version {dense_unit.version}, {torch.get_num_threads()} torch thread(s)"


def run_sweep(
    grid: Mapping[str, Any] | str | Path,
    *,
    workers: int = 0,
    scheduler: Any = None,
    progress: bool = False,
    store: Store | None = None,
) -> list[SweepResult]:
    """Run a grid (see the module docstring) and return every point's summaries, in grid order.

    Stored points are read; the others are computed, each saved to the store as soon as it is
    done. ``workers=0`` (default): a plain loop in this process. ``workers=N``: a local Dask
    cluster of N single-threaded worker processes. ``scheduler``: the address of a running Dask
    scheduler (``"tcp://host:8786"``) or a ``dask.distributed.Client``. ``store``: default
    ``get_store()`` (``TOYTICKET_STORE``)."""
    check_int("workers", workers, 0)
    if scheduler is not None and workers:
        raise ValueError(
            f"workers={workers} and scheduler={show(scheduler)} are both given: allowed one "
            "of them (local processes or a cluster)"
        )
    if (
        scheduler is not None
        and not isinstance(scheduler, str)
        and not hasattr(scheduler, "submit")
    ):
        raise wrong_type(
            "scheduler", scheduler, "an address 'tcp://host:port' or a dask.distributed.Client"
        )
    store = get_store() if check_store("store", store) is None else store
    points = grid_points(grid)
    results: list[SweepResult | None] = [None] * len(points)
    todo: list[tuple[int, Point, Entry]] = []
    for i, point in enumerate(points):
        entry = point.entry()
        found, value = store.load(entry)
        if found:
            results[i] = SweepResult(point, value, "stored")
        else:
            todo.append((i, point, entry))

    if todo:
        store.ensure_writable()  # before computing: a result that cannot be saved is lost
    here = _environment()

    def finish(i: int, entry: Entry, there: str, value: dict[str, torch.Tensor]) -> None:
        if there != here:
            raise RuntimeError(
                f"a worker computes with {there}, this process with {here}: install the same "
                "toyticket version on the workers and give them as many threads "
                "(OMP_NUM_THREADS)"
            )
        store.stats["computed", entry.kind] += 1
        store.save(entry, value)
        results[i] = SweepResult(points[i], value, "computed")

    bar = tqdm(total=len(todo), disable=not progress, desc="sweep")
    if todo and scheduler is None and workers == 0:
        for i, point, entry in todo:
            finish(i, entry, *run_unit(point.arguments()))
            bar.update()
    elif todo:
        with _dask_client(scheduler, workers) as client:
            _run_on_dask(client, todo, finish, bar)
    bar.close()
    return [r for r in results if r is not None]


def _run_on_dask(
    client: Any,
    todo: list[tuple[int, Point, Entry]],
    finish: Callable[[int, Entry, str, dict[str, torch.Tensor]], None],
    bar: Any,
) -> None:
    """Submit every missing point and save each result as soon as it arrives."""
    from dask.distributed import as_completed

    futures = {}
    for i, point, entry in todo:
        future = client.submit(run_unit, point.arguments(), key=f"dense_unit-{entry.digest}-{i}")
        futures[future] = (i, entry)
    for future, (there, value) in as_completed(futures, with_results=True):
        i, entry = futures[future]
        finish(i, entry, there, value)
        bar.update()


@contextlib.contextmanager
def _dask_client(scheduler: Any, workers: int) -> Iterator[Any]:
    """A ``dask.distributed.Client``: the one given (left open), one connected to the
    ``scheduler`` address, or one on a local cluster of ``workers`` single-threaded
    processes (both closed on exit)."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler
    elif scheduler is not None:
        with Client(scheduler) as client:
            yield client
    else:
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client


# --------------------------------------------------------------------------- CLI


def _table(results: Sequence[SweepResult], columns: Sequence[str]) -> str:
    from toyticket.stats import format_table

    return format_table({r.point.name(): r.result for r in results}, list(columns))


def _iter_listing(points: Sequence[Point], store: Store) -> Iterator[str]:
    for point in points:
        entry = point.entry()
        there = store.enabled and store.paths(entry)[1].is_file()
        yield f"{'stored ' if there else 'missing'}  {entry.digest}  {point.name()}"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m toyticket.sweep",
        description="Run the dense study over a grid of parameters into the results store "
        "(TOYTICKET_STORE, default _build/store).",
    )
    parser.add_argument("--grid", required=True, type=Path, metavar="GRID.yaml")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=0, help="local Dask worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, tcp://host:port")
    parser.add_argument("--list", action="store_true", help="list the points; compute nothing")
    parser.add_argument(
        "--columns",
        nargs="+",
        default=["bit_accuracy", "carried_clauses"],
        help="quantities to print, mean [95%% interval] over seeds",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    store = get_store()
    try:  # every argument, and the store, before anything is computed
        points = grid_points(args.grid)
        check_int("--workers", args.workers, 0)
        check_choices("--columns", args.columns, SUMMARY_NAMES)
        if not args.list:
            store.ensure_writable()
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(points)} points; store: {store.root or 'off (TOYTICKET_STORE=off)'}")
    if args.list:
        for line in _iter_listing(points, store):
            print(line)
        return 0
    start = time.monotonic()
    results = run_sweep(
        args.grid,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.no_progress and sys.stderr.isatty(),
        store=store,
    )
    computed = sum(r.source == "computed" for r in results)
    print(
        f"{computed} computed, {len(results) - computed} read from the store, "
        f"in {time.monotonic() - start:.1f} s"
    )
    print(_table(results, args.columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())

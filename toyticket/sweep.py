"""Sweeps: a study over a grid of parameters, its points written into the results store.

From the command line::

    python -m toyticket.sweep --grid GRID.yaml                 # one process, a plain loop
    python -m toyticket.sweep --grid GRID.yaml --workers 4     # 4 local processes (Dask)
    python -m toyticket.sweep --grid GRID.yaml --scheduler tcp://host:8786   # a Dask cluster
    python -m toyticket.sweep --grid GRID.yaml --list          # the points, and which are stored

or from Python: ``toyticket.run_sweep(grid)``, with ``grid`` a mapping or a YAML file path.

A grid names its study, fixed top-level values, and sections of config fields::

    study: dense            # the study to run: dense, tickets or contest (STUDIES)
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

The studies (``STUDIES``: name -> ``Study``, one unit of work per point):

- ``dense``: one ``experiments.dense_unit`` per point, one batched training of all the seeds on
  one task and its summaries ({name: [seeds]}). Top level: ``seeds`` (default 8), ``device``
  (default "cpu"); sections ``task``, ``model``, ``training``, ``reader``.
- ``contest``: one ``contest.contest_study`` per point (every discovery method and probe at the
  ladder's levels, retrained identically), the call ``contest_study(build_task(task), model,
  training, seeds, pruning, methods, levels, motion_step, shuffles, reader,
  late_rewind_step)``. Top level: ``seeds`` (default 8), ``methods`` (default all of
  ``contest.METHODS``), ``levels`` (default null: every level), ``motion_step`` (default 50),
  ``shuffles`` (default true), ``late_rewind_step`` (default 50); sections as for
  ``tickets``.
- ``regime``: one ``regimes.regime_numbers`` per point (the key numbers of every claim for
  one task, chapter 8), the call ``regime_numbers(build_task(task), model, training, seeds,
  pruning, reader)``. Top level: ``seeds`` (default 8); sections as for ``tickets``.
- ``tickets``: one ``tickets.ticket_study`` per point, the call
  ``ticket_study(build_task(task), model, training, seeds, pruning, methods, reader,
  sign_reinit=sign_reinit)`` ({row: {name: [levels, seeds]}}). Top level: ``seeds`` (default
  8), ``methods`` (discovery methods, default [imp]), ``sign_reinit`` (default false);
  sections ``task``, ``model``, ``training``, ``pruning`` (PruningConfig fields), ``reader``.

A grid file may also hold a *list* of grids: its points are those of each grid in turn (the
regime map's one-factor variations are a list, not a product). ``--grid`` given several times
sweeps the files' points in that order, on one set of workers, and the grids of a list may be
of different studies: ``bench/full_reproduction.sh`` computes every heavy study of the book in
one sweep. Points start in order (one per worker thread in flight), so a point that reads a
piece another point computes (a contest reads the IMP ladder of the ticket study on its task)
should come after it, far enough that the piece is stored when it starts; if it is not, the
point computes the piece itself, to the same bits.

The grid is the product of all axes: a section field whose value is a list. Top-level values
are never axes: ``methods: [imp, snip]`` is one list of methods for every point, and a sweep
over ``methods``, ``sign_reinit`` or ``seeds`` is one grid per value. To give a tuple-valued
field (``training.checkpoints``) one value, wrap it in a list: ``checkpoints: [[10, 50]]``.
Every grid is validated before anything runs (unknown study, section, field or method, a bad
value: one line naming it and what is allowed).

Every point is stored under the same identity as when a chapter makes the same call itself
(``dense_study`` for its units, ``ticket_study`` directly; ``tt.make_task(...)`` and
``tt.build_task(TaskConfig(...))`` draw the same task, so either keys the store alike). A sweep
therefore precomputes chapters (a chapter reads what a sweep wrote, and the other way round),
and a killed sweep resumes: points already stored are not recomputed.

With ``--workers`` (a Dask ``LocalCluster`` of single-threaded processes) or ``--scheduler``
(a running Dask scheduler, ``dask scheduler`` and ``dask worker ADDRESS --nthreads 1`` started
by hand) the points are computed by Dask distributed workers, which need this package
installed at the same version and the same number of torch threads (1 by default): a worker
that differs is an error. Workers do not write the store; they return results and this
process, the one that owns the store, writes them (with the stored pieces computed inside a
point, such as a ticket study's IMP ladder), so workers need no shared file system.
Each point is one deterministic computation, so the results are bitwise those of a single
process. A progress bar counts the points as they finish.
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

from toyticket.contest import METHODS as CONTEST_METHODS
from toyticket.contest import contest_study
from toyticket.experiments import dense_unit, unit_arguments
from toyticket.features import ReaderConfig
from toyticket.model import ModelConfig
from toyticket.regimes import KEY_NUMBERS, regime_numbers
from toyticket.store import Entry, Store, StoredFunction, get_store, read_only
from toyticket.summary import SUMMARY_NAMES
from toyticket.tasks import TaskConfig, build_task
from toyticket.tickets import PruningConfig, check_methods, ticket_study
from toyticket.training import TrainConfig
from toyticket.validation import (
    check_bool,
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

# --------------------------------------------------------------------------- studies


@dataclass(frozen=True)
class Study:
    """A kind of study that grids sweep.

    - ``unit``: the stored function that one point computes (its store kind and version);
    - ``sections``: the grid's config sections, name -> config class (a list is an axis);
    - ``values``: the grid's top-level values, name -> (default, ``check(name, value)``
      returning it validated and normalized); never axes;
    - ``call``: one point's sections and values by name -> the unit's arguments by name,
      validated and normalized exactly as a direct call normalizes them (so both share one
      store entry);
    - ``rows``: a unit's result as table rows {label suffix: {summary name: [seeds]}}, for
      the command line;
    - ``quantities``: the names those rows hold (what ``--columns`` may ask for), and
      ``columns``: the ones printed by default."""

    unit: StoredFunction
    sections: Mapping[str, type]
    values: Mapping[str, tuple[Any, Callable[[str, Any], Any]]]
    call: Callable[..., dict[str, Any]]
    rows: Callable[[Any], dict[str, dict[str, torch.Tensor]]]
    quantities: tuple[str, ...] = SUMMARY_NAMES
    columns: tuple[str, ...] = ("bit_accuracy", "carried_clauses")

    @property
    def top_level(self) -> tuple[str, ...]:
        """The names a grid of this study may hold at its top level."""
        return ("study", *self.values, *self.sections)


def check_grid_seeds(name: str, seeds: object) -> tuple[int, ...]:
    """Network seeds in a grid: a count n (seeds 0..n-1) or a list of distinct seeds."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = range(check_int(name, seeds, 1))
    return check_seeds(name, seeds)


def _dense_call(
    task: TaskConfig,
    model: ModelConfig,
    training: TrainConfig,
    reader: ReaderConfig,
    seeds: tuple[int, ...],
    device: str,
) -> dict[str, Any]:
    """A dense point: one ``dense_unit``, normalized as ``dense_study`` normalizes its units."""
    return dense_unit.arguments(*unit_arguments(task, model, training, seeds, reader, device))


def _tickets_call(
    task: TaskConfig,
    model: ModelConfig,
    training: TrainConfig,
    pruning: PruningConfig,
    reader: ReaderConfig,
    seeds: tuple[int, ...],
    methods: tuple[str, ...],
    sign_reinit: bool,
) -> dict[str, Any]:
    """A ticket point: the call ``ticket_study(build_task(task), model, ...)`` of a chapter."""
    return ticket_study.arguments(
        build_task(task), model, training, seeds, pruning, methods, reader, sign_reinit=sign_reinit
    )


def _sparsest_level(study: dict[str, dict[str, torch.Tensor]]) -> dict[str, dict[str, Any]]:
    """A ticket study's rows (dense, imp, the controls, the methods) at its sparsest level."""
    sparsity = study["sparsity"]["sparsity"][-1].item()
    return {
        f"{row} @ {sparsity:.2f}": {name: values[-1] for name, values in summaries.items()}
        for row, summaries in study.items()
        if row != "sparsity"
    }


def _contest_call(
    task: TaskConfig,
    model: ModelConfig,
    training: TrainConfig,
    pruning: PruningConfig,
    reader: ReaderConfig,
    seeds: tuple[int, ...],
    methods: tuple[str, ...],
    levels: tuple[int, ...] | None,
    motion_step: int,
    shuffles: bool,
    late_rewind_step: int,
) -> dict[str, Any]:
    """A contest point: the call ``contest_study(build_task(task), model, ...)`` of a chapter."""
    return contest_study.arguments(
        build_task(task),
        model,
        training,
        seeds,
        pruning,
        methods,
        levels,
        motion_step,
        shuffles,
        reader,
        late_rewind_step,
    )


def _regime_call(
    task: TaskConfig,
    model: ModelConfig,
    training: TrainConfig,
    pruning: PruningConfig,
    reader: ReaderConfig,
    seeds: tuple[int, ...],
) -> dict[str, Any]:
    """A regime point: the call ``regime_numbers(build_task(task), model, ...)`` of chapter 8."""
    return regime_numbers.arguments(build_task(task), model, training, seeds, pruning, reader)


def _regime_rows(numbers: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """A regime point's key numbers, those per level at the ladder's sparsest level."""
    sparsity = numbers["sparsity"][-1].item()
    return {
        f"@ {sparsity:.2f}": {
            name: values[-1] if values.ndim == 2 else values
            for name, values in numbers.items()
            if name != "sparsity"
        }
    }


def _check_levels(name: str, levels: Any) -> tuple[int, ...] | None:
    """Ladder levels of a contest: null (all) or a list of levels (checked by the study)."""
    if levels is None:
        return None
    if isinstance(levels, str) or not isinstance(levels, Sequence):
        raise wrong_type(name, levels, "null or a list of ladder levels")
    return tuple(levels)


# the grid sections of the studies that prune (tickets, contest)
PRUNED_SECTIONS = {
    "task": TaskConfig,
    "model": ModelConfig,
    "training": TrainConfig,
    "pruning": PruningConfig,
    "reader": ReaderConfig,
}

STUDIES: dict[str, Study] = {
    "dense": Study(
        unit=dense_unit,
        sections={
            "task": TaskConfig,
            "model": ModelConfig,
            "training": TrainConfig,
            "reader": ReaderConfig,
        },
        values={"seeds": (8, check_grid_seeds), "device": ("cpu", check_device)},
        call=_dense_call,
        rows=lambda summaries: {"": summaries},
    ),
    "tickets": Study(
        unit=ticket_study,
        sections=PRUNED_SECTIONS,
        values={
            "seeds": (8, check_grid_seeds),
            "methods": (["imp"], check_methods),
            "sign_reinit": (False, check_bool),
        },
        call=_tickets_call,
        rows=_sparsest_level,
    ),
    "contest": Study(
        unit=contest_study,
        sections=PRUNED_SECTIONS,
        values={
            "seeds": (8, check_grid_seeds),
            "methods": (list(CONTEST_METHODS), lambda n, v: check_choices(n, v, CONTEST_METHODS)),
            "levels": (None, _check_levels),
            "motion_step": (50, lambda n, v: check_int(n, v, 1)),
            "shuffles": (True, check_bool),
            "late_rewind_step": (50, lambda n, v: check_int(n, v, 1)),
        },
        call=_contest_call,
        rows=_sparsest_level,
    ),
    "regime": Study(
        unit=regime_numbers,
        sections=PRUNED_SECTIONS,
        values={"seeds": (8, check_grid_seeds)},
        call=_regime_call,
        rows=_regime_rows,
        quantities=KEY_NUMBERS,
        columns=("bit_accuracy", "move_rate"),
    ),
}


@dataclass(frozen=True)
class Point:
    """One point of a grid: its ``study`` (a key of ``STUDIES``), its ``values`` (every
    section's config and every top-level value, (("task", TaskConfig(...)), ..., ("seeds",
    (0, 1)), ...), also readable as attributes: ``point.task``, ``point.seeds``), and the
    values of the axes with more than one value that single it out (``label``:
    (("section.field", value), ...))."""

    study: str
    values: tuple[tuple[str, Any], ...]
    label: tuple[tuple[str, Any], ...]

    def __getattr__(self, name: str) -> Any:
        values = dict(self.__dict__.get("values", ()))  # not self.values: no recursion
        if name in values:
            return values[name]
        raise AttributeError(
            f"a {self.__dict__.get('study')!r} grid point has no value {name!r}: it has "
            f"{', '.join(values)}"
        )

    def arguments(self) -> dict[str, Any]:
        """The arguments by name of the study's unit, validated and normalized (the same as
        those of the chapter's call that computes the point)."""
        return STUDIES[self.study].call(**dict(self.values))

    def entry(self) -> Entry:
        """The point's identity in the results store."""
        return STUDIES[self.study].unit.entry(**self.arguments())

    def name(self) -> str:
        """The point's label as text, e.g. ``task.seed=1, model.width=8``."""
        return ", ".join(f"{k}={v!r}" for k, v in self.label) or "(single point)"


@dataclass
class SweepResult:
    """A point and its result (what the study's unit returns: summaries {name: [seeds]} for
    ``dense``, {row: {name: [levels, seeds]}} for ``tickets``); ``source``: "stored" or
    "computed"."""

    point: Point
    result: Any
    source: str


# --------------------------------------------------------------------------- grids


Grid = Mapping[str, Any] | Sequence[Mapping[str, Any]] | str | Path


def load_grid(grid: Grid) -> dict[str, Any] | list[dict[str, Any]]:
    """A grid as a mapping, or a list of grids as a list of mappings: read from a YAML file
    when given a path."""
    if isinstance(grid, str | os.PathLike):
        grid = read_yaml("grid", grid) or {}
    if isinstance(grid, Sequence) and not isinstance(grid, str):
        if not grid:
            raise ValueError("grid is an empty list: allowed a grid or a list of at least one")
        return [load_grid(g) for g in grid]  # type: ignore[misc]
    if not isinstance(grid, Mapping):
        raise wrong_type(
            "grid", grid, "a mapping of section -> values, a list of them, or a YAML file"
        )
    return dict(grid)


def grid_points(grid: Grid) -> list[Point]:
    """Every point of a grid, validated (unknown study, sections, fields or methods, bad
    values: ValueError or TypeError naming them), in a fixed order: the last axis varies
    fastest; for a list of grids (of any studies), the points of each in turn. Nothing is
    trained, and the store is not touched."""
    grid = load_grid(grid)
    if isinstance(grid, list):
        return [point for g in grid for point in grid_points(g)]
    study_name = check_choice("grid study", grid.get("study", "dense"), STUDIES)
    study = STUDIES[study_name]
    unknown = sorted(set(grid) - set(study.top_level), key=str)
    if unknown:
        raise ValueError(
            f"grid: unknown section(s) {', '.join(map(str, unknown))} (study {study_name!r}); "
            f"allowed: {', '.join(study.top_level)}"
        )
    top = {
        name: check(f"grid {name}", grid.get(name, default))
        for name, (default, check) in study.values.items()
    }

    fixed: dict[str, dict[str, Any]] = {}
    axes: list[tuple[str, str, list[Any]]] = []
    for section, cls in study.sections.items():
        values = grid.get(section) or {}
        if not isinstance(values, Mapping):
            raise wrong_type(f"grid section {section}", values, "a mapping of field: value")
        allowed = [f.name for f in dataclasses.fields(cls)]
        bad = sorted(set(values) - set(allowed), key=str)
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
        for section, cls in study.sections.items():
            try:
                configs[section] = cls(**fields[section])
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"grid section {section!r}: {exc}") from exc
        label = tuple(
            (f"{section}.{name}", value)
            for (section, name, values), value in zip(axes, combo, strict=True)
            if len(values) > 1
        )
        point = Point(study_name, tuple({**configs, **top}.items()), label)
        try:  # what the unit itself checks (e.g. a rewind step within training)
            point.arguments()
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"grid point {point.name()}: {exc}") from exc
        points.append(point)
    return points


def _tuples(value: Any) -> Any:
    """YAML lists inside a value (e.g. checkpoints) as tuples, as the configs keep them."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


# --------------------------------------------------------------------------- running


def run_unit(
    job: tuple[str, dict[str, Any]],
) -> tuple[str, Any, list[tuple[Entry, Any]]]:
    """What a worker runs for one point, ``job`` = (study name, the unit's arguments by
    name): (its environment, the study's unit computed without writing the store, and the
    stored pieces it computed on the way, as (entry, value) pairs: a ticket study's IMP
    ladder, ``tickets.imp_ladder``). Pieces already stored are read where the worker sees the
    store; the process that owns it saves the rest."""
    study, arguments = job
    unit = STUDIES[study].unit
    with read_only() as pieces:
        value = unit.fn(**arguments)
    return _environment(unit), value, pieces


def _environment(unit: StoredFunction) -> str:
    """What must be the same here and on a worker: the code version and the torch threads."""
    return f"code version {unit.version}, {torch.get_num_threads()} torch thread(s)"


def run_sweep(
    grid: Grid,
    *,
    workers: int = 0,
    scheduler: Any = None,
    progress: bool | str = False,
    store: Store | None = None,
) -> list[SweepResult]:
    """Run a grid (see the module docstring) and return every point's result, in grid order.

    Stored points are read; the others are computed, each saved to the store as soon as it is
    done. ``workers=0`` (default): a plain loop in this process. ``workers=N``: a local Dask
    cluster of N single-threaded worker processes. ``scheduler``: the address of a running Dask
    scheduler (``"tcp://host:8786"``) or a ``dask.distributed.Client``. Results are bitwise the
    same either way. ``progress``: ``True``, a progress bar over the points to compute;
    ``"log"``, a line on stderr per point computed (for logs, where a bar is unreadable).
    ``store``: default ``get_store()`` (``TOYTICKET_STORE``)."""
    check_int("workers", workers, 0)
    if progress not in (True, False, "log"):
        raise ValueError(f"progress={show(progress)} is not allowed: allowed True, False or 'log'")
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
    todo: list[tuple[int, Entry, tuple[str, dict[str, Any]]]] = []
    for i, point in enumerate(points):
        arguments = point.arguments()
        entry = STUDIES[point.study].unit.entry(**arguments)
        found, value = store.load(entry)
        if found:
            results[i] = SweepResult(point, value, "stored")
        else:
            todo.append((i, entry, (point.study, arguments)))

    if todo:
        store.ensure_writable()  # before computing: a result that cannot be saved is lost

    def finish(
        i: int, entry: Entry, there: str, value: Any, pieces: list[tuple[Entry, Any]]
    ) -> None:
        here = _environment(STUDIES[points[i].study].unit)
        if there != here:
            raise RuntimeError(
                f"a worker computes with {there}, this process with {here}: install the same "
                "toyticket version on the workers and give them as many threads "
                "(OMP_NUM_THREADS)"
            )
        for piece, piece_value in pieces:
            store.stats["computed", piece.kind] += 1
            store.save(piece, piece_value)
        store.stats["computed", entry.kind] += 1
        store.save(entry, value)
        results[i] = SweepResult(points[i], value, "computed")
        if progress == "log":
            done = sum(r is not None and r.source == "computed" for r in results)
            print(
                f"{done}/{len(todo)} computed, {time.monotonic() - start:.0f} s: point {i + 1} "
                f"({points[i].study}, {points[i].name()})",
                file=sys.stderr,
                flush=True,
            )

    studies = "+".join(dict.fromkeys(p.study for p in points))
    bar = tqdm(total=len(todo), disable=progress is not True, desc=f"{studies} sweep", unit="point")
    start = time.monotonic()
    if todo and scheduler is None and workers == 0:
        for i, entry, job in todo:
            finish(i, entry, *run_unit(job))
            bar.update()
    elif todo:
        with _dask_client(scheduler, workers) as client:
            _run_on_dask(client, todo, finish, bar)
    bar.close()
    return [r for r in results if r is not None]


def _run_on_dask(
    client: Any,
    todo: list[tuple[int, Entry, tuple[str, dict[str, Any]]]],
    finish: Callable[[int, Entry, str, Any, list[tuple[Entry, Any]]], None],
    bar: Any,
) -> None:
    """Keep as many points in flight as the cluster has worker threads, submitted in grid
    order, and save each result as soon as it arrives. Points thus start in order (Dask given
    them all at once runs them in an order of its own), so a point that reads a piece of an
    earlier one finds it stored if it comes far enough after it."""
    from dask.distributed import as_completed

    waiting = iter(todo)
    futures: dict[Any, tuple[int, Entry]] = {}
    running = as_completed(with_results=True)

    def fill() -> None:
        slots = max(1, sum(client.nthreads().values()))  # workers may join a cluster later
        while len(futures) < slots and (item := next(waiting, None)) is not None:
            i, entry, job = item
            future = client.submit(run_unit, job, key=f"{entry.kind}-{entry.digest}-{i}")
            futures[future] = (i, entry)
            running.add(future)

    fill()
    for future, (there, value, pieces) in running:
        i, entry = futures.pop(future)
        finish(i, entry, there, value, pieces)
        bar.update()
        fill()


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

    rows = {}
    for r in results:
        for suffix, values in STUDIES[r.point.study].rows(r.result).items():
            rows[f"{r.point.name()}: {suffix}" if suffix else r.point.name()] = values
    return format_table(rows, list(columns))


def _iter_listing(points: Sequence[Point], store: Store) -> Iterator[str]:
    for point in points:
        entry = point.entry()
        there = store.enabled and store.paths(entry)[1].is_file()
        yield f"{'stored ' if there else 'missing'}  {entry.digest}  {point.name()}"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m toyticket.sweep",
        description="Run a study (dense or tickets) over a grid of parameters into the results "
        "store (TOYTICKET_STORE, default _build/store). A ticket sweep prints every row at the "
        "sparsest level of the ladder.",
    )
    parser.add_argument(
        "--grid",
        required=True,
        type=Path,
        action="append",
        metavar="GRID.yaml",
        help="a grid file; several: their points in turn, on the same workers",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=0, help="local Dask worker processes")
    where.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, tcp://host:port")
    parser.add_argument("--list", action="store_true", help="list the points; compute nothing")
    parser.add_argument(
        "--columns",
        nargs="+",
        help="quantities to print, mean [95%% interval] over seeds (default: bit_accuracy and "
        "carried_clauses; for regime points, bit_accuracy and move_rate); the names must "
        "exist in every study swept",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    store = get_store()
    try:  # every argument, and the store, before anything is computed
        points = grid_points(args.grid)
        check_int("--workers", args.workers, 0)
        studies = list(dict.fromkeys(p.study for p in points))
        for study in studies if args.columns else ():
            try:
                check_choices("--columns", args.columns, STUDIES[study].quantities)
            except ValueError as exc:
                raise ValueError(f"{exc} (the quantities of the {study} points)") from None
        if not args.list:
            store.ensure_writable()
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kinds = f"{', '.join(studies)} stud{'y' if len(studies) == 1 else 'ies'}"
    print(f"{len(points)} points ({kinds}); store: {store.root or 'off (TOYTICKET_STORE=off)'}")
    if args.list:
        for line in _iter_listing(points, store):
            print(line)
        return 0
    start = time.monotonic()
    results = run_sweep(
        args.grid,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=False if args.no_progress else sys.stderr.isatty() or "log",
        store=store,
    )
    computed = sum(r.source == "computed" for r in results)
    print(
        f"{computed} computed, {len(results) - computed} read from the store, "
        f"in {time.monotonic() - start:.1f} s"
    )
    for study in studies:
        columns = args.columns or STUDIES[study].columns
        print(_table([r for r in results if r.point.study == study], columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tests of sweeps (toyticket.sweep): grids, the single-process loop, Dask workers, the CLI, and
a sweep killed mid-way that resumes to the numbers of an uninterrupted one; for the dense study
and for ticket studies (which share the store with a chapter's own ticket_study calls)."""

import importlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import toyticket as tt
from toyticket import store as st

# the module (tt.run_sweep is its entry point from Python):
sweep_module = importlib.import_module("toyticket.sweep")

ROOT = Path(__file__).resolve().parent.parent
GRID = {
    "study": "dense",
    "seeds": 2,
    "task": {"n_vars": 6, "n_clauses": 6, "group_size": 2, "seed": [0, 1]},
    "model": {"width": [3, 4]},
    "training": {"steps": 50, "checkpoints": [[10, 20]]},
}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(st.STORE_ENV, str(tmp_path / "store"))
    return tt.get_store()


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        torch.equal(a[k].nan_to_num(-7.0), b[k].nan_to_num(-7.0)) for k in a
    )


def _reference(monkeypatch) -> list[dict]:
    """The grid's results from the plain loop with the store off (then back on)."""
    before = os.environ[st.STORE_ENV]
    monkeypatch.setenv(st.STORE_ENV, "off")
    results = [r.result for r in tt.run_sweep(GRID)]
    monkeypatch.setenv(st.STORE_ENV, before)
    return results


def test_grid_points_are_the_product_of_the_axes():
    points = tt.grid_points(GRID)
    assert [p.label for p in points] == [
        (("task.seed", s), ("model.width", w)) for s in (0, 1) for w in (3, 4)
    ]
    first = points[0]
    assert first.seeds == (0, 1) and first.device == "cpu"
    assert first.task == tt.TaskConfig(n_vars=6, n_clauses=6, group_size=2, seed=0)
    assert first.training == tt.TrainConfig(steps=50, checkpoints=(10, 20))
    assert len(tt.grid_points({"seeds": [3, 5]})) == 1


def test_a_sweep_and_dense_study_share_the_store(store):
    results = tt.run_sweep(GRID)
    assert [r.source for r in results] == ["computed"] * 4
    # the chapters' dense_study reads what the sweep wrote (and the other way round)
    task = tt.TaskConfig(n_vars=6, n_clauses=6, group_size=2)
    training = tt.TrainConfig(steps=50, checkpoints=(25,))  # checkpoints do not matter
    study = tt.dense_study(task, tt.ModelConfig(width=4), training, [0, 1], [0, 1])
    assert store.stats["computed", "dense_unit"] == 4 and store.stats["hit", "dense_unit"] == 2
    for name, values in study.items():
        expected = torch.cat([results[1].result[name], results[3].result[name]])
        assert torch.equal(values.nan_to_num(-7.0), expected.nan_to_num(-7.0))
    assert [r.source for r in tt.run_sweep(GRID)] == ["stored"] * 4


def test_device_cpu_is_the_default(store, monkeypatch):
    """`device` goes through the grid, dense_study and train; results come back on the CPU."""
    default = _reference(monkeypatch)
    explicit = [r.result for r in tt.run_sweep({**GRID, "device": "cpu"})]
    assert all(_equal(a, b) for a, b in zip(default, explicit, strict=True))


def test_dask_workers_give_bitwise_the_single_process_results(store, monkeypatch):
    """A local cluster reached by its address, as a user's `--scheduler tcp://host:port`."""
    from dask.distributed import LocalCluster

    reference = _reference(monkeypatch)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        results = tt.run_sweep(GRID, scheduler=cluster.scheduler_address)
    assert [r.source for r in results] == ["computed"] * 4
    assert all(_equal(r.result, ref) for r, ref in zip(results, reference, strict=True))
    assert [r.source for r in tt.run_sweep(GRID)] == ["stored"] * 4  # written by this process


def test_points_start_in_grid_order_one_per_worker_thread(store):
    """So that a point reading an earlier point's piece (a contest, a ticket study's ladder)
    finds it stored: Dask given every point at once starts them in an order of its own."""
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        submitted, in_flight = [], []
        submit = client.submit

        def recording_submit(*args, **kwargs):
            in_flight.append(sum(not f.done() for f in submitted))
            submitted.append(submit(*args, **kwargs))
            return submitted[-1]

        client.submit = recording_submit
        results = tt.run_sweep(GRID, scheduler=client)
    assert [r.source for r in results] == ["computed"] * 4
    expected = [f"-{i}" for i in range(4)]  # each key ends with the point's index in the grid
    assert [f.key[-2:] for f in submitted] == expected
    assert in_flight == [0, 0, 0, 0]


def test_a_worker_with_other_code_is_refused(store, monkeypatch):
    monkeypatch.setattr(
        sweep_module, "run_unit", lambda arguments: ("code version 0123", {"x": torch.ones(1)}, [])
    )
    with pytest.raises(RuntimeError, match="same toyticket version"):
        tt.run_sweep(GRID)
    assert not list(store.root.rglob("*.pt"))


def test_a_killed_sweep_resumes_to_the_uninterrupted_results(store, monkeypatch, tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump(GRID))
    # The sweep process kills itself (SIGKILL, no clean-up) while computing its third point.
    script = textwrap.dedent(
        """
        import importlib, os, signal, sys
        sweep = importlib.import_module("toyticket.sweep")
        real, calls = sweep.run_unit, []
        def run_unit(arguments):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(arguments)
        sweep.run_unit = run_unit
        sys.exit(sweep.main(["--grid", sys.argv[1], "--no-progress"]))
        """
    )
    env = {**os.environ, st.STORE_ENV: str(store.root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(grid_file)], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert len(list(store.root.rglob("*.json"))) == 2  # two points were finished

    resumed = tt.run_sweep(grid_file)
    assert [r.source for r in resumed] == ["stored", "stored", "computed", "computed"]
    reference = _reference(monkeypatch)
    assert all(_equal(r.result, ref) for r, ref in zip(resumed, reference, strict=True))


def test_command_line(store, tmp_path, capsys):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump(GRID))
    assert sweep_module.main(["--grid", str(grid_file), "--list"]) == 0
    listing = capsys.readouterr().out
    assert "4 points" in listing and listing.count("missing") == 4
    assert sweep_module.main(["--grid", str(grid_file), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 computed, 0 read from the store" in out
    assert "task.seed=1, model.width=4" in out and "bit_accuracy" in out
    assert sweep_module.main(["--grid", str(grid_file), "--no-progress"]) == 0
    assert "0 computed, 4 read from the store" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**GRID, "model": {"widht": [3]}}))
    assert sweep_module.main(["--grid", str(bad)]) == 2
    assert "widht" in capsys.readouterr().err


def test_several_grid_files_are_one_sweep(store, tmp_path, capsys):
    dense, tickets = tmp_path / "dense.yaml", tmp_path / "tickets.yaml"
    dense.write_text(yaml.safe_dump(GRID))
    tickets.write_text(yaml.safe_dump(TICKETS))
    both = ["--grid", str(dense), "--grid", str(tickets)]
    assert sweep_module.main([*both, "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("6 points (dense, tickets studies)")
    assert lines[1].endswith("task.seed=0, model.width=3") and lines[6].endswith("task.seed=1")
    # --columns must name quantities of every study swept, checked before any work
    assert sweep_module.main([*both, "--columns", "move_rate"]) == 2
    err = capsys.readouterr().err
    assert "--columns entry='move_rate'" in err and "of the dense points" in err
    assert sweep_module.main(both) == 0  # stderr is no terminal here: a line per point
    captured = capsys.readouterr()
    out, log = captured.out, captured.err.splitlines()
    assert "6 computed, 0 read from the store" in out
    assert len(log) == 6 and log[-1].startswith("6/6 computed, ")
    assert "point 5 (tickets, task.seed=0)" in captured.err
    assert "task.seed=1, model.width=4" in out and "task.seed=1: snip @ 0.36" in out
    assert [r.source for r in tt.run_sweep(TICKETS)] == ["stored"] * 2


def test_example_grid_is_valid():
    for path in sorted((ROOT / "params" / "sweeps").glob("*.yaml")):
        assert tt.grid_points(path), path


# ---------------------------------------------------------------- ticket studies

TICKETS = {  # two tiny ticket points, the shape of chapter 3's calls
    "study": "tickets",
    "seeds": 2,
    "methods": ["imp", "snip"],
    "sign_reinit": True,
    "task": {"n_vars": 6, "n_clauses": 6, "group_size": 2, "seed": [0, 1]},
    "model": {"width": 5},
    "training": {"steps": 80, "lr": 0.1, "optimizer": "sgd", "momentum": 0.9},
    "pruning": {"fraction": 0.2, "rounds": 2},
    "reader": {},
}
TICKET_ARGS = (  # what follows the task in the chapter's call of a TICKETS point
    tt.ModelConfig(width=5),
    tt.TrainConfig(steps=80, lr=0.1, optimizer="sgd", momentum=0.9),
    [0, 1],
    tt.PruningConfig(fraction=0.2, rounds=2),
    ["imp", "snip"],
    tt.ReaderConfig(),
)


def _chapter_task(seed: int) -> tt.Task:
    return tt.make_task(n_vars=6, n_clauses=6, group_size=2, seed=seed)


def _studies_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(_equal(a[row], b[row]) for row in a)


def test_ticket_points_are_the_chapters_calls():
    points = tt.grid_points(TICKETS)
    assert [p.label for p in points] == [(("task.seed", 0),), (("task.seed", 1),)]
    assert points[0].pruning == TICKET_ARGS[3] and points[0].methods == ("imp", "snip")
    for point, seed in zip(points, (0, 1), strict=True):
        chapter = tt.ticket_study.entry(_chapter_task(seed), *TICKET_ARGS, sign_reinit=True)
        assert point.entry() == chapter
    # make_task(...) and build_task(TaskConfig(...)) draw the same task: the same store key
    config = tt.TaskConfig(n_clauses=12, seed=3)
    assert tt.ticket_study.entry(tt.make_task(n_clauses=12, seed=3), *TICKET_ARGS) == (
        tt.ticket_study.entry(tt.build_task(config), *TICKET_ARGS)
    )
    # a grid's defaults are ticket_study's: methods ["imp"], sign_reinit false, ReaderConfig()
    bare = tt.grid_points({"study": "tickets", "seeds": 2, "task": {"seed": 3}})
    assert bare[0].entry() == tt.ticket_study.entry(
        tt.build_task(config), tt.ModelConfig(), tt.TrainConfig(), [0, 1], tt.PruningConfig()
    )


def test_a_ticket_sweep_and_ticket_study_share_the_store(store):
    results = tt.run_sweep(TICKETS)
    assert [r.source for r in results] == ["computed"] * 2
    # in this process the ladders a ticket study computes are kept too (chapters read them)
    assert store.stats["computed", "imp_ladder"] == 2
    # a chapter's own call reads what the sweep wrote ...
    study = tt.ticket_study(_chapter_task(1), *TICKET_ARGS, sign_reinit=True)
    assert store.stats["hit", "ticket_study"] == 1
    assert store.stats["computed", "ticket_study"] == 2
    assert _studies_equal(study, results[1].result)
    assert set(study) == {"dense", "imp", "reinit", "random", "sign_reinit", "snip", "sparsity"}
    # ... and a sweep reads what a chapter's call wrote
    tt.ticket_study(_chapter_task(2), *TICKET_ARGS, sign_reinit=True)
    assert store.stats["computed", "ticket_study"] == 3
    grid = {**TICKETS, "task": {**TICKETS["task"], "seed": [2, 0]}}
    assert [r.source for r in tt.run_sweep(grid)] == ["stored", "stored"]
    assert store.stats["computed", "ticket_study"] == 3


def test_a_ticket_sweep_on_two_local_workers_is_bitwise_one_process(store, monkeypatch):
    before = os.environ[st.STORE_ENV]
    monkeypatch.setenv(st.STORE_ENV, "off")
    reference = [r.result for r in tt.run_sweep(TICKETS)]
    monkeypatch.setenv(st.STORE_ENV, before)
    results = tt.run_sweep(TICKETS, workers=2)  # a LocalCluster of 2 processes
    assert [r.source for r in results] == ["computed"] * 2
    # workers write nothing; this process writes their results and the ladders inside them
    kinds = sorted(p.parent.name for p in store.root.rglob("*.pt"))
    assert kinds == ["imp_ladder"] * 2 + ["ticket_study"] * 2
    assert all(_studies_equal(r.result, ref) for r, ref in zip(results, reference, strict=True))
    stored = tt.run_sweep(TICKETS)  # written by this process, read back bitwise
    assert [r.source for r in stored] == ["stored"] * 2
    assert all(_studies_equal(r.result, ref) for r, ref in zip(stored, reference, strict=True))


def test_ticket_command_line_lists_what_is_stored(store, tmp_path, capsys):
    grid_file = tmp_path / "tickets.yaml"
    grid_file.write_text(yaml.safe_dump(TICKETS))
    tt.ticket_study(_chapter_task(0), *TICKET_ARGS, sign_reinit=True)  # a chapter computed one
    assert sweep_module.main(["--grid", str(grid_file), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 points (tickets study)")
    assert lines[1].startswith("stored ") and lines[1].endswith("task.seed=0")
    assert lines[2].startswith("missing") and lines[2].endswith("task.seed=1")
    assert sweep_module.main(["--grid", str(grid_file), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 computed, 1 read from the store" in out
    for row in ("dense", "imp", "reinit", "random", "sign_reinit", "snip"):
        assert f"task.seed=1: {row} @ 0.36" in out
    assert sweep_module.main(["--grid", str(grid_file), "--list"]) == 0
    assert capsys.readouterr().out.count("stored ") == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TICKETS, "methods": ["imp", "lottery"]}))
    assert sweep_module.main(["--grid", str(bad), "--list"]) == 2
    assert "grid methods entry='lottery'" in capsys.readouterr().err


def test_every_study_is_one_row_of_the_table():
    assert set(sweep_module.STUDIES) == {"dense", "tickets", "contest", "regime"}
    for name, study in sweep_module.STUDIES.items():
        points = tt.grid_points({"study": name, "seeds": 2})
        assert points[0].entry().kind == study.unit.kind
        assert set(study.top_level) == {"study", *study.values, *study.sections}


CONTEST = {
    "study": "contest",
    "seeds": 2,
    "methods": ["imp", "imp_late", "random", "distance", "motion"],
    "levels": [2],
    "motion_step": 5,
    "shuffles": False,
    "late_rewind_step": 4,
    "task": {"seed": [0, 1], "n_vars": 6, "n_clauses": 6, "group_size": 2},
    "model": {"width": 8},
    "training": {"steps": 40, "lr": 0.5, "optimizer": "sgd"},
    "pruning": {"fraction": 0.4, "rounds": 2},
}


def test_a_contest_sweep_is_the_chapters_call_and_bitwise_on_two_workers(store):
    from toyticket.contest import contest_study

    points = tt.grid_points(CONTEST)
    model, training = tt.ModelConfig(width=8), tt.TrainConfig(steps=40, lr=0.5, optimizer="sgd")
    pruning = tt.PruningConfig(fraction=0.4, rounds=2)
    methods = ("imp", "imp_late", "random", "distance", "motion")
    for point, seed in zip(points, (0, 1), strict=True):
        call = contest_study.entry(
            _chapter_task(seed),
            model,
            training,
            [0, 1],
            pruning,
            methods,
            [2],
            5,
            False,
            late_rewind_step=4,
        )
        assert point.entry() == call
    local = tt.run_sweep(CONTEST)
    assert [r.source for r in local] == ["computed"] * 2
    store.root.rename(store.root.with_name("first"))
    on_workers = tt.run_sweep(CONTEST, workers=2)
    assert [r.source for r in on_workers] == ["computed"] * 2
    for a, b in zip(local, on_workers, strict=True):
        assert _studies_equal(a.result, b.result)
    kinds = sorted({p.parent.name for p in store.root.rglob("*.pt")})
    assert kinds == ["contest_study", "imp_ladder"]  # the ladders inside, written here


# ---------------------------------------------------------------- regime numbers (chapter 8)

REGIME = {  # a one-factor map of two tiny regimes: a list of grids, not a product
    "study": "regime",
    "seeds": 2,
    "task": {"seed": 0, "n_clauses": 12},
    "model": {"width": 12},
    "training": {"steps": 40, "lr": 0.5, "optimizer": "sgd"},
    "pruning": {"fraction": 0.5, "rounds": 2},
}


def test_a_list_of_grids_is_their_points_in_turn():
    wide = {**REGIME, "model": {"width": 16}}
    points = tt.grid_points([REGIME, wide])
    assert [p.model.width for p in points] == [12, 16]
    assert points[0].entry() == tt.grid_points(REGIME)[0].entry()
    mixed = tt.grid_points([REGIME, TICKETS])  # studies may differ: one sweep of the book
    assert [p.study for p in mixed] == ["regime", "tickets", "tickets"]
    assert mixed[1].entry() == tt.grid_points(TICKETS)[0].entry()
    with pytest.raises(ValueError, match="empty list"):
        tt.grid_points([])


def test_a_regime_sweep_is_the_chapters_call_and_bitwise_on_two_workers(store):
    from toyticket.regimes import regime_numbers

    task = tt.make_task(n_clauses=12, seed=0)
    model, training = tt.ModelConfig(width=12), tt.TrainConfig(steps=40, lr=0.5, optimizer="sgd")
    pruning = tt.PruningConfig(fraction=0.5, rounds=2)
    grids = [REGIME, {**REGIME, "task": {"seed": 0, "n_clauses": 12, "readout": "clauses"}}]
    points = tt.grid_points(grids)
    assert points[0].entry() == regime_numbers.entry(task, model, training, [0, 1], pruning)
    local = tt.run_sweep(grids)
    assert [r.source for r in local] == ["computed"] * 2
    store.root.rename(store.root.with_name("first"))
    on_workers = tt.run_sweep(grids, workers=2)
    for a, b in zip(local, on_workers, strict=True):
        assert _equal(a.result, b.result)
    kinds = sorted({p.parent.name for p in store.root.rglob("*.pt")})
    # the pieces computed inside a point are written by this process too
    assert kinds == ["designed_study", "family_study", "imp_ladder", "regime_numbers"]

"""Tests of sweeps (toyticket.sweep): grids, the single-process loop, Dask workers, the CLI, and
a sweep killed mid-way that resumes to the numbers of an uninterrupted one."""

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


def test_a_worker_with_other_code_is_refused(store, monkeypatch):
    monkeypatch.setattr(
        sweep_module, "run_unit", lambda arguments: ("code version 0123", {"x": torch.ones(1)})
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


def test_example_grid_is_valid():
    for path in sorted((ROOT / "params" / "sweeps").glob("*.yaml")):
        assert tt.grid_points(path), path

"""Tests of the results store (toyticket.store) and of dense_study reading from it.

Every test points TOYTICKET_STORE at its own temporary folder. Configurations are tiny
(6 variables, 50 steps, 2 seeds): what is tested is identity, atomicity and recomputation,
not training."""

import dataclasses
import importlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import toyticket as tt
from toyticket import store as st
from toyticket.experiments import dense_unit

ROOT = Path(__file__).resolve().parent.parent
TASK = tt.TaskConfig(n_vars=6, n_clauses=6, group_size=2)
MODEL = tt.ModelConfig(width=4)
TRAINING = tt.TrainConfig(steps=50)
SEEDS = [0, 1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh store in a temporary folder, selected through TOYTICKET_STORE."""
    monkeypatch.setenv(st.STORE_ENV, str(tmp_path / "store"))
    return tt.get_store()


def _study(task_seeds=(0, 1), **changes):
    fields = {"task": TASK, "model": MODEL, "training": TRAINING, "seeds": SEEDS}
    fields.update(changes)
    return tt.dense_study(
        fields["task"], fields["model"], fields["training"], fields["seeds"], task_seeds
    )


def _assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name].nan_to_num(-7.0), b[name].nan_to_num(-7.0)), name
        assert torch.equal(a[name].isnan(), b[name].isnan()), name


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: relative name -> (inode, mtime in ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- identity


def test_identity_is_a_hash_of_configs_seeds_and_code():
    key = {"task": TASK, "model": MODEL, "seeds": (0, 1)}
    a = st.Entry.of("unit", key, "v1")
    assert (
        a.digest
        == st.Entry.of("unit", {"model": MODEL, "seeds": [0, 1], "task": TASK}, "v1").digest
    )
    others = [
        st.Entry.of("unit", {**key, "seeds": (0, 2)}, "v1"),
        st.Entry.of("unit", {**key, "model": tt.ModelConfig(width=5)}, "v1"),
        st.Entry.of("unit", {**key, "task": dataclasses.replace(TASK, seed=1)}, "v1"),
        st.Entry.of("unit", key, "v2"),
        st.Entry.of("other", key, "v1"),
    ]
    assert len({a.digest, *(e.digest for e in others)}) == 6
    # a dataclass is not the dict of its fields; tensors count by content
    assert st.canonical(MODEL) != st.canonical(dataclasses.asdict(MODEL))
    t = torch.arange(6.0).reshape(2, 3)
    assert st.canonical(t) == st.canonical(t.clone()) != st.canonical(t + 1)
    assert st.canonical(t.T) != st.canonical(t)


def test_code_version_ignores_comments_and_docstrings(tmp_path, monkeypatch):
    module = tmp_path / "tt_fake_module.py"
    monkeypatch.syspath_prepend(str(tmp_path))
    module.write_text('"""Doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 1  # one\n')
    import tt_fake_module

    base = st.source_hash(tt_fake_module)
    module.write_text("def f(x):\n    # a comment, other formatting\n    return (x + 1)\n")
    assert st.source_hash(tt_fake_module) == base
    module.write_text("def f(x):\n    return x + 2\n")
    assert st.source_hash(tt_fake_module) != base


def test_dense_unit_version_hashes_the_modules_it_depends_on():
    modules = [m if isinstance(m, str) else m.__name__ for m in tt.experiments.DENSE_CODE]
    assert {"toyticket.features", "toyticket.training", "toyticket.summary"} <= set(modules)
    assert "toyticket.stats" not in modules and "toyticket.planted" not in modules
    assert dense_unit.version == st.code_version(
        tt.experiments.DENSE_CODE, extra="toyticket.experiments.dense_unit"
    )


# ---------------------------------------------------------------- caching


def test_cached_computes_once_and_reads_back_bitwise(store):
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.randn(3, generator=torch.Generator().manual_seed(0)), "n": [1, 2.5]}

    first = tt.cached("demo", {"a": 1}, compute, version="v")
    second = tt.cached("demo", {"a": 1}, compute, version="v")
    assert len(calls) == 1
    assert torch.equal(first["x"], second["x"]) and second["n"] == [1, 2.5]
    tt.cached("demo", {"a": 2}, compute, version="v")
    tt.cached("demo", {"a": 1}, compute, version="w")
    assert len(calls) == 3
    assert store.stats["hit", "demo"] == 1 and store.stats["computed", "demo"] == 3
    meta = json.loads(next((store.root / "demo").glob("*.json")).read_text())
    assert meta["key_document"]["kind"] == "demo" and "sha256" in meta


def test_a_run_is_storable(store):
    task = tt.build_task(TASK)
    training = tt.TrainConfig(steps=20, checkpoints=(5,))
    masks = {"W1": (torch.arange(2 * 4 * 6).reshape(2, 4, 6) % 3 > 0).float()}
    run = tt.train(task, MODEL, training, SEEDS, masks=masks)
    again = tt.Run.from_dict(run.to_dict())
    back = tt.cached("run_demo", {"seeds": SEEDS}, lambda: run, version="v")
    back = tt.cached("run_demo", {"seeds": SEEDS}, lambda: None, version="v")
    for other in (again, back):
        assert isinstance(other, tt.Run) and other.seeds == run.seeds
        assert other.checkpoints.keys() == run.checkpoints.keys() == {0, 5, 20}
        for t in run.checkpoints:
            _assert_bitwise_equal(run.checkpoints[t], other.checkpoints[t])
        _assert_bitwise_equal(run.history, other.history)
        _assert_bitwise_equal(run.masks, other.masks)


def test_store_off_always_computes_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(st.STORE_ENV, "off")
    monkeypatch.chdir(tmp_path)
    calls = []
    for _ in range(2):
        tt.cached("demo", {"a": 1}, lambda: calls.append(1) or {"x": torch.zeros(1)}, "v")
    assert len(calls) == 2 and not tt.get_store().enabled
    assert list(tmp_path.iterdir()) == []


def test_default_location_is_the_checkouts_build_folder(monkeypatch):
    """papermill runs chapters from the repository root, nbval from tests/reference: both
    must use the same store."""
    monkeypatch.delenv(st.STORE_ENV, raising=False)
    roots = set()
    for cwd in (ROOT, ROOT / "tests" / "reference"):
        monkeypatch.chdir(cwd)
        roots.add(tt.get_store().root)
    assert roots == {ROOT / "_build" / "store"}


# ---------------------------------------------------------------- corruption and atomicity


def test_truncated_or_partial_entries_are_recomputed(store):
    reference = _study((0,))
    (data,) = (store.root / "dense_unit").glob("*.pt")
    meta = data.with_suffix(".json")
    damages = {
        "truncated data": lambda: data.write_bytes(data.read_bytes()[:-100]),
        "flipped byte": lambda: data.write_bytes(
            (lambda b: b[:500] + bytes([b[500] ^ 1]) + b[501:])(data.read_bytes())
        ),
        "no sidecar (killed between the two writes)": lambda: meta.unlink(),
        "truncated sidecar": lambda: meta.write_text(meta.read_text()[:40]),
        "sidecar of another key": lambda: meta.write_text(
            json.dumps({**json.loads(meta.read_text()), "key_document": {"kind": "x"}})
        ),
        "no data": lambda: data.unlink(),
    }
    computed = store.stats["computed", "dense_unit"]
    for what, damage in damages.items():
        damage()
        again = _study((0,))
        _assert_bitwise_equal(reference, again)
        computed += 1
        assert store.stats["computed", "dense_unit"] == computed, what
    assert store.stats["corrupt", "dense_unit"] == 5  # all but the missing sidecar
    hits = store.stats["hit", "dense_unit"]
    _study((0,))
    assert store.stats["hit", "dense_unit"] == hits + 1  # the rewritten entry is good again


def test_a_failed_write_leaves_no_entry_and_no_temporary_file(store, monkeypatch):
    real_replace = os.replace

    def fail_on_sidecar(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(st.os, "replace", fail_on_sidecar)
    with pytest.raises(OSError, match="disk full"):
        tt.cached("demo", {"a": 1}, lambda: {"x": torch.ones(2)}, "v")
    monkeypatch.setattr(st.os, "replace", real_replace)
    names = [p.name for p in (store.root / "demo").iterdir()]
    assert len(names) == 1 and names[0].endswith(".pt")  # data without its completeness marker
    calls = []
    tt.cached("demo", {"a": 1}, lambda: calls.append(1) or {"x": torch.ones(2)}, "v")
    assert calls == [1]


# ---------------------------------------------------------------- hygiene


def test_a_killed_writer_leaves_a_temporary_file_that_is_ignored_then_removed(store):
    """A writer killed between writing and renaming leaves `.<name>~<host>~<pid>~<x>.tmp`:
    readers ignore it (the entry is absent, so it is computed) and that next write removes it."""
    script = textwrap.dedent(
        """
        import os, signal
        import torch
        import toyticket as tt
        from toyticket import store as st
        st.os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write
        tt.cached("demo", {"a": 1}, lambda: {"x": torch.ones(2)}, "v")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    folder = store.root / "demo"
    (left,) = folder.glob(".*.tmp")
    assert left.name.startswith(".") and not list(folder.glob("*.pt"))
    calls = []
    value = tt.cached("demo", {"a": 1}, lambda: calls.append(1) or {"x": torch.ones(2)}, "v")
    assert calls == [1] and torch.equal(value["x"], torch.ones(2))
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".pt"]  # the .tmp is gone


def test_stale_temporary_files_are_removed_and_live_ones_kept(tmp_path):
    host = socket.gethostname()
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    names = {
        "dead writer on this host": f".a.pt~{host}~{int(finished.stdout)}~0a1b2c3d.tmp",
        "live writer on this host": f".b.pt~{host}~{os.getpid()}~0a1b2c3d.tmp",
        "fresh, another host": ".c.pt~elsewhere~1~0a1b2c3d.tmp",
        "old, another host": ".d.pt~elsewhere~1~0a1b2c3d.tmp",
        "old, older naming": ".e.pt.x1y2z3ab.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    long_ago = time.time() - 2 * st.STALE_SECONDS
    for key in ("old, another host", "old, older naming"):
        os.utime(tmp_path / names[key], (long_ago, long_ago))
    removed = {p.name for p in st.remove_stale_temporaries(tmp_path)}
    stale = ("dead writer on this host", "old, another host", "old, older naming")
    assert removed == {names[k] for k in stale}
    assert {p.name for p in tmp_path.iterdir()} == set(names.values()) - removed


@pytest.mark.parametrize(
    ("umask", "root_mode", "file_mode", "folder_mode"),
    [
        (0o022, 0o755, 0o644, 0o755),  # the usual umask: like any new file (not 0600)
        (0o077, 0o750, 0o640, 0o750),  # a private umask in a store shared by a group
        (0o077, 0o700, 0o600, 0o700),  # a private store stays private
        (0o002, 0o770, 0o664, 0o775),  # a group umask
    ],
)
def test_entries_are_readable_by_the_group_of_a_shared_store(
    tmp_path, umask, root_mode, file_mode, folder_mode
):
    root = tmp_path / "store"
    root.mkdir()
    os.chmod(root, root_mode)
    previous = os.umask(umask)
    try:
        st.Store(root).cached("demo", {}, lambda: {"x": torch.ones(1)}, "v")
    finally:
        os.umask(previous)
    assert [p.name for p in root.iterdir()] == ["demo"]  # the writability probe is gone
    assert stat.S_IMODE((root / "demo").stat().st_mode) == folder_mode
    for entry in (root / "demo").iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == file_mode, entry.name


def test_the_sweep_module_runs_without_a_warning():
    """`python -m toyticket.sweep` once warned (runpy: the package had imported the module)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-W", "error::RuntimeWarning", "-m", "toyticket.sweep", "--help"]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("usage: python -m toyticket.sweep")
    sweep = importlib.import_module("toyticket.sweep")  # still exported, imported on first use
    assert tt.run_sweep is sweep.run_sweep and tt.grid_points is sweep.grid_points


# ---------------------------------------------------------------- dense_study on the store


def test_dense_study_equals_training_without_the_store(store):
    """Units are stored with `checkpoints` and `log_every` normalized away: the numbers are
    those of the configuration asked for, bitwise."""
    training = tt.TrainConfig(steps=50, checkpoints=(10, 20), log_every=7)
    got = _study((0, 1), training=training)
    parts = []
    for seed in (0, 1):
        task = tt.build_task(dataclasses.replace(TASK, seed=seed))
        run = tt.train(task, MODEL, training, SEEDS)
        parts.append(tt.summarize(run.final, task, initial=run.checkpoints[0]))
    _assert_bitwise_equal(got, {k: torch.cat([p[k] for p in parts]) for k in parts[0]})
    _study((0, 1))  # the same networks without checkpoints: read from the store
    assert store.stats["computed", "dense_unit"] == 2 and store.stats["hit", "dense_unit"] == 2


def test_interrupted_study_resumes_and_equals_an_uninterrupted_one(store, monkeypatch):
    half = _study((0,))  # the run that was stopped after its first unit
    resumed = _study((0, 1, 2))
    assert store.stats["computed", "dense_unit"] == 3 and store.stats["hit", "dense_unit"] == 1
    monkeypatch.setenv(st.STORE_ENV, "off")
    uninterrupted = _study((0, 1, 2))
    _assert_bitwise_equal(resumed, uninterrupted)
    _assert_bitwise_equal(half, {k: v[:2] for k, v in uninterrupted.items()})


def test_a_parameter_change_recomputes_only_what_it_touches(store):
    _study((0, 1))
    before = _files(store.root)
    _study((0, 1))  # unchanged: all read
    _study((0, 1), model=tt.ModelConfig(width=5))  # two new units
    _study((1, 2))  # one new unit
    assert store.stats["computed", "dense_unit"] == 5 and store.stats["hit", "dense_unit"] == 3
    after = _files(store.root)
    assert {k: after[k] for k in before} == before  # nothing rewritten
    assert len(after) == len(before) + 6  # three new entries, two files each


# ---------------------------------------------------------------- the book


CHAPTER = "02_dense_training"
TINY = {
    "n_seeds": 2,
    "task_seeds": [0],
    "steps": 50,
    "widths": [4, 8],
    "clause_counts": [6, 12],
    "checkpoint_every": 25,
}


@pytest.mark.slow
def test_a_prose_change_recomputes_nothing(tmp_path):
    """Execute chapter 2 with papermill (tools/book.py) at tiny parameters, then again with a
    changed markdown cell: the second run reads every result and writes no store file. (That
    a parameter change recomputes only what it touches is tested above, without the book.)"""
    script = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        from pathlib import Path
        spec = importlib.util.spec_from_file_location("book", {str(ROOT / "tools" / "book.py")!r})
        book = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(book)
        (chapter,) = book.select_chapters(book.load_chapters(), [{CHAPTER!r}])
        if sys.argv[1] == "edited":
            cell = next(c for c in chapter.nb.cells if c.cell_type == "markdown")
            cell.source += "\\n\\nA new sentence of prose."
        params = {{{CHAPTER!r}: json.loads(sys.argv[2])}}
        book.execute_chapters([chapter], params, Path(sys.argv[3]), progress=False)
        """
    )
    env = {**os.environ, st.STORE_ENV: str(tmp_path / "store"), "OMP_NUM_THREADS": "1"}
    store = tmp_path / "store"

    def run(version: str, params: dict) -> None:
        out = tmp_path / version
        cmd = [sys.executable, "-c", script, version, json.dumps(params), str(out)]
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    run("original", TINY)
    first = _files(store)
    assert len(first) >= 2 * 6  # entries written (data + sidecar each)
    run("edited", TINY)
    assert _files(store) == first  # nothing recomputed, nothing rewritten

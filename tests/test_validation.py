"""Parameters are checked at the door: bad values given to public functions raise before any
work, with a message that names the parameter and says what is allowed.

Each case is (call, exception type, the parameter's name, a fragment saying what is allowed).
The per-module tests (test_tasks, test_training, test_features) check more values of each
parameter; this file covers every public entry point, the store, sweeps and the book tool."""

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import toyticket as tt
from toyticket import store as st

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("toyticket_book_tool", ROOT / "tools" / "book.py")
book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book)

TASK = tt.make_task(n_vars=6, n_clauses=6, group_size=2)
MODEL = tt.ModelConfig(width=4)
TRAINING = tt.TrainConfig(steps=2)
INIT = tt.init_params(6, 3, MODEL, [0, 1])
GRID = {"seeds": 2, "task": {"n_vars": 6, "n_clauses": 6, "group_size": 2}}


def _train(**kwargs) -> Callable[[], object]:
    seeds = kwargs.pop("seeds", [0, 1])
    return lambda: tt.train(TASK, MODEL, TRAINING, seeds, **kwargs)


def _book_check() -> None:
    defaults = book.parse_parameters("n_seeds = 2\nlr = 0.1\n")
    book.check_parameters("02_dense_training", {"n_seed": 4}, defaults)


CASES = [
    # tasks
    ("make_task n_vars", lambda: tt.make_task(n_vars=0), ValueError, "n_vars", "allowed [1, 20]"),
    ("make_task readout", lambda: tt.make_task(readout="or"), ValueError, "readout", "one of"),
    ("TaskConfig input_p", lambda: tt.TaskConfig(input_p=1.0), ValueError, "input_p", "(0.0, 1.0)"),
    (
        "TaskConfig clause_size",
        lambda: tt.TaskConfig(clause_size=11),
        ValueError,
        "clause_size",
        "[1, 10]",
    ),
    ("TaskConfig groups", lambda: tt.TaskConfig(n_clauses=7), ValueError, "group_size", "multiple"),
    (
        "TaskConfig n_clauses type",
        lambda: tt.TaskConfig(n_clauses="12"),
        TypeError,
        "n_clauses",
        "integer",
    ),
    # model and training configs
    ("ModelConfig width", lambda: tt.ModelConfig(width=0), ValueError, "width", "allowed"),
    (
        "ModelConfig init_scale",
        lambda: tt.ModelConfig(init_scale=-1.0),
        ValueError,
        "init_scale",
        "allowed",
    ),
    (
        "TrainConfig optimizer",
        lambda: tt.TrainConfig(optimizer="rmsprop"),
        ValueError,
        "optimizer",
        "'adam', 'sgd'",
    ),
    ("TrainConfig lr", lambda: tt.TrainConfig(lr=0.0), ValueError, "lr", "allowed (0.0"),
    (
        "TrainConfig checkpoints",
        lambda: tt.TrainConfig(steps=10, checkpoints=(20,)),
        ValueError,
        "checkpoints",
        "[0, 10]",
    ),
    (
        "init_params n_inputs",
        lambda: tt.init_params(0, 3, MODEL, [0]),
        ValueError,
        "n_inputs",
        ">= 1",
    ),
    # train
    (
        "train init shape",
        _train(init={**INIT, "W1": torch.zeros(2, 5, 6)}),
        ValueError,
        "init['W1']",
        "expected (2, 4, 6)",
    ),
    (
        "train init keys",
        _train(init={k: v for k, v in INIT.items() if k != "b2"}),
        ValueError,
        "init",
        "exactly the keys",
    ),
    (
        "train masks key",
        _train(masks={"b1": torch.ones(2, 4)}),
        ValueError,
        "masks",
        "'W1' and 'W2'",
    ),
    (
        "train masks shape",
        _train(masks={"W2": torch.ones(1, 3, 4)}),
        ValueError,
        "masks['W2']",
        "expected (2, 3, 4)",
    ),
    ("train seeds empty", _train(seeds=[]), ValueError, "seeds", "at least one"),
    ("train seeds negative", _train(seeds=[0, -1]), ValueError, "seeds", ">= 0"),
    ("train seeds scalar", _train(seeds=3), TypeError, "seeds", "sequence of integer seeds"),
    ("train device missing", _train(device="cuda:7"), ValueError, "device", "choose one of"),
    ("train device unknown", _train(device="gpu"), ValueError, "device", "'cpu'"),
    ("train device type", _train(device=0), TypeError, "device", "'cpu'"),
    # studies
    (
        "dense_study task_seeds",
        lambda: tt.dense_study(TASK.config, MODEL, TRAINING, [0], []),
        ValueError,
        "task_seeds",
        "at least one",
    ),
    (
        "dense_study training",
        lambda: tt.dense_study(TASK.config, MODEL, {"steps": 2}, [0]),
        TypeError,
        "training",
        "TrainConfig",
    ),
    (
        "dense_study device",
        lambda: tt.dense_study(TASK.config, MODEL, TRAINING, [0], device="tpu"),
        ValueError,
        "device",
        "choose one of",
    ),
    # reading
    (
        "ReaderConfig min_recall",
        lambda: tt.ReaderConfig(min_recall=1.5),
        ValueError,
        "min_recall",
        "[0.0, 1.0]",
    ),
    ("ReaderConfig delta", lambda: tt.ReaderConfig(delta=-1), ValueError, "delta", ">= 0"),
    (
        "code_distance tau",
        lambda: tt.code_distance(INIT["W1"], TASK, tau=-0.5),
        ValueError,
        "tau",
        "allowed [0.0",
    ),
    (
        "code_distance shape",
        lambda: tt.code_distance(torch.zeros(2, 4, 7), TASK),
        ValueError,
        "W1",
        "n_vars=6",
    ),
    (
        "mean_ci level",
        lambda: tt.mean_ci(torch.ones(4), level=95),
        ValueError,
        "level",
        "(0.0, 1.0)",
    ),
    ("mean_ci values", lambda: tt.mean_ci(torch.ones(3, 0)), ValueError, "values", "at least one"),
    ("mean_ci n_boot", lambda: tt.mean_ci(torch.ones(4), n_boot=0), ValueError, "n_boot", ">= 1"),
    # the store
    (
        "store key type",
        lambda: st.Entry.of("demo", {"f": print}, "v"),
        TypeError,
        "key.f",
        "allowed are",
    ),
    (
        "store key nan",
        lambda: st.Entry.of("demo", {"lr": float("nan")}, "v"),
        ValueError,
        "key.lr",
        "finite",
    ),
    (
        "store key dict key",
        lambda: st.Entry.of("demo", {"a": {1: 2}}, "v"),
        TypeError,
        "key.a",
        "must be str",
    ),
    (
        "store kind",
        lambda: st.Entry.of("Dense Study", {}, "v"),
        ValueError,
        "kind",
        "lower-case letters",
    ),
    (
        "stored ignore",
        lambda: st.stored("demo", ignore=["nope"])(lambda x: x),
        ValueError,
        "ignore",
        "parameter",
    ),
    # sweeps
    (
        "grid section",
        lambda: tt.grid_points({**GRID, "modle": {}}),
        ValueError,
        "modle",
        "allowed: study, seeds",
    ),
    (
        "grid field",
        lambda: tt.grid_points({**GRID, "model": {"widht": [4]}}),
        ValueError,
        "widht",
        "ModelConfig has: width, init_scale",
    ),
    (
        "grid value",
        lambda: tt.grid_points({**GRID, "model": {"width": [4, 0]}}),
        ValueError,
        "width",
        "allowed [1, 4096]",
    ),
    ("grid seeds", lambda: tt.grid_points({**GRID, "seeds": 0}), ValueError, "seeds", ">= 1"),
    (
        "grid study",
        lambda: tt.grid_points({**GRID, "study": "tickets"}),
        ValueError,
        "study",
        "('dense',)",
    ),
    (
        "grid axis",
        lambda: tt.grid_points({**GRID, "model": {"width": []}}),
        ValueError,
        "model.width",
        "empty",
    ),
    (
        "grid device",
        lambda: tt.grid_points({**GRID, "device": "cuda:9"}),
        ValueError,
        "device",
        "choose one of",
    ),
    ("sweep workers", lambda: tt.run_sweep(GRID, workers=-1), ValueError, "workers", ">= 0"),
    # the book tool (papermill parameters)
    ("book parameter", _book_check, book.BookError, "n_seed", "defines: lr, n_seeds"),
]


def test_there_are_at_least_twenty_kinds():
    assert len(CASES) >= 20


@pytest.mark.parametrize(
    ("call", "error", "name", "allowed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_parameter_is_named_with_what_is_allowed(
    call, error, name, allowed, tmp_path, monkeypatch
):
    monkeypatch.setenv(st.STORE_ENV, str(tmp_path / "store"))  # nothing may reach the store
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert name in message, message
    assert allowed in message, message
    assert not (tmp_path / "store").exists()


def test_a_stored_result_must_be_plain(tmp_path):
    store = st.Store(tmp_path)
    with pytest.raises(TypeError, match=r"demo result\['x'\] is a object.*plain tensors"):
        store.save(st.Entry.of("demo", {}, "v"), {"x": object()})
    assert not list(tmp_path.rglob("*.pt"))

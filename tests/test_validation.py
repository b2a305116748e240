"""Parameters are checked at the door: bad values given to public functions raise before any
work, with a one-line message that names the parameter and says what is allowed.

Each case is (id, call, exception type, the parameter's name, a fragment saying what is
allowed). Every case runs with the inputs of every task guarded (``Task.inputs`` raises: no
truth table, so no training, evaluation or reading), with the store in a folder that must stay
absent. The per-module tests (test_tasks, test_training, test_features) check more values of
each parameter; this file covers every public entry point, the store, sweeps and the book tool,
by the kinds of mistakes users make (``KINDS``)."""

import contextlib
import importlib
import importlib.util
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import toyticket as tt
from toyticket import store as st

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("toyticket_book_tool", ROOT / "tools" / "book.py")
book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(book)
sweep_module = importlib.import_module("toyticket.sweep")

TASK = tt.make_task(n_vars=6, n_clauses=6, group_size=2)
OTHER_TASK = tt.make_task(n_vars=7, n_clauses=6, group_size=2)  # another task's shapes
MODEL = tt.ModelConfig(width=4)
TRAINING = tt.TrainConfig(steps=2)
PRUNING = tt.PruningConfig(rounds=1)
INIT = tt.init_params(6, 3, MODEL, [0, 1])
ONES = {"W1": torch.ones(2, 4, 6)}
GRID = {"seeds": 2, "task": {"n_vars": 6, "n_clauses": 6, "group_size": 2}}
TICKET_GRID = {**GRID, "study": "tickets", "training": {"steps": 5}, "pruning": {"rounds": 2}}
STUDY = {  # the shape of a ticket study's result: 1 level, 2 seeds
    row: {"bit_accuracy": torch.ones(1, 2), "exact_outputs": torch.ones(1, 2)}
    for row in ("dense", "imp", "reinit", "random")
} | {"sparsity": {"sparsity": torch.tensor([0.2])}}


class CLIError(Exception):
    """A command line that refused its arguments: the one line it printed after `error:`."""


def _cli(main: Callable, argv: list[str]) -> None:
    """Run a command line in this process; raise CLIError with its error line if it fails."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code
    if rc:
        lines = [line for line in err.getvalue().splitlines() if "error:" in line]
        assert len(lines) == 1, err.getvalue()
        raise CLIError(lines[0])


def _train(**kwargs) -> Callable[[], object]:
    seeds = kwargs.pop("seeds", [0, 1])
    return lambda: tt.train(TASK, MODEL, TRAINING, seeds, **kwargs)


def _study(**changes) -> Callable[[], object]:
    arguments = dict(task=TASK, model=MODEL, training=TRAINING, seeds=[0, 1], pruning=PRUNING)
    arguments.update(changes)
    return lambda: tt.ticket_study(**arguments)


def _dense(**changes) -> Callable[[], object]:
    arguments = dict(task=TASK.config, model=MODEL, training=TRAINING, seeds=[0, 1])
    arguments.update(changes)
    return lambda: tt.dense_study(**arguments)


def _book_check() -> None:
    defaults = book.parse_parameters("n_seeds = 2\nlr = 0.1\n")
    book.check_parameters("02_dense_training", {"n_seed": 4}, defaults)


def _book_values(chapter: str, **values) -> Callable[[], object]:
    return lambda: book.resolve_parameters({chapter: values}, book.load_chapters())


def _yaml_file(name: str, text: str) -> str:
    """A file in this test's temporary folder (the harness chdirs there)."""
    Path(name).write_text(text)
    return name


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
        "allowed (2, 4, 6)",
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
        "allowed (2, 3, 4)",
    ),
    ("train seeds empty", _train(seeds=[]), ValueError, "seeds", "at least one"),
    ("train seeds negative", _train(seeds=[0, -1]), ValueError, "seeds[1]", "[0, 4294967295]"),
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
        lambda: tt.grid_points({**GRID, "study": "probes"}),
        ValueError,
        "study",
        "('dense', 'tickets', 'contest', 'regime')",
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
    (
        "grid section of another study",
        lambda: tt.grid_points({**GRID, "pruning": {"rounds": 2}}),
        ValueError,
        "pruning (study 'dense')",
        "allowed: study, seeds, device, task",
    ),
    (
        "ticket grid section",
        lambda: tt.grid_points({**TICKET_GRID, "device": "cpu"}),
        ValueError,
        "device (study 'tickets')",
        "allowed: study, seeds, methods, sign_reinit, task, model, training, pruning, reader",
    ),
    (
        "ticket grid method",
        lambda: tt.grid_points({**TICKET_GRID, "methods": ["imp", "lottery"]}),
        ValueError,
        "grid methods entry='lottery'",
        "choose one of ('imp', 'oneshot', 'magnitude_init'",
    ),
    (
        "ticket grid methods one name",
        lambda: tt.grid_points({**TICKET_GRID, "methods": "imp"}),
        TypeError,
        "grid methods='imp'",
        "allowed a list of names",
    ),
    (
        "ticket grid sign_reinit",
        lambda: tt.grid_points({**TICKET_GRID, "sign_reinit": [False, True]}),
        TypeError,
        "grid sign_reinit",
        "allowed True or False",
    ),
    (
        "ticket grid pruning field",
        lambda: tt.grid_points({**TICKET_GRID, "pruning": {"fractoin": 0.1}}),
        ValueError,
        "fractoin",
        "PruningConfig has: fraction, rounds, scope",
    ),
    (
        "ticket grid pruning value",
        lambda: tt.grid_points({**TICKET_GRID, "pruning": {"rounds": [2, 0]}}),
        ValueError,
        "grid section 'pruning': rounds=0",
        "allowed [1, 100]",
    ),
    (
        "ticket grid rewind_step",
        lambda: tt.grid_points({**TICKET_GRID, "pruning": {"rewind_step": [1, 5]}}),
        ValueError,
        "grid point pruning.rewind_step=5: rewind_step=5",
        "allowed [0, 4]",
    ),
    (
        "ticket grid unknown method in the sweep CLI",
        lambda: _cli(
            sweep_module.main,
            ["--grid", _yaml_file("t.yaml", "study: tickets\nmethods: [imp, snap]\n")],
        ),
        CLIError,
        "grid methods entry='snap'",
        "choose one of",
    ),
    # the book tool (papermill parameters)
    ("book parameter", _book_check, book.BookError, "n_seed", "defines: lr, n_seeds"),
    #
    # ---- silently accepted before: now refused
    (
        "silent: train masks not 0/1",
        _train(masks={"W1": torch.full((2, 4, 6), 0.5)}),
        ValueError,
        "masks['W1']",
        "allowed 0/1 or bool masks",
    ),
    (
        "silent: evaluate masks NaN",
        lambda: tt.evaluate(INIT, TASK, {"W1": torch.full((2, 4, 6), float("nan"))}),
        ValueError,
        "masks['W1']",
        "allowed 0/1",
    ),
    (
        "silent: summarize masks 2",
        lambda: tt.summarize(INIT, TASK, masks={"W2": torch.full((2, 3, 4), 2.0)}),
        ValueError,
        "masks['W2']",
        "allowed 0/1",
    ),
    (
        "silent: supported mask not 0/1",
        lambda: tt.supported(torch.full((2, 4, 6), 0.3), TASK),
        ValueError,
        "mask_W1",
        "allowed 0/1",
    ),
    (
        "silent: planted gain NaN",
        lambda: tt.planted_network(TASK, gain=float("nan")),
        ValueError,
        "gain",
        "allowed (0.0, inf)",
    ),
    (
        "silent: planted gain negative",
        lambda: tt.planted_network(TASK, gain=-1.0),
        ValueError,
        "gain",
        "allowed (0.0",
    ),
    (
        "silent: dense_study repeated seeds",
        _dense(seeds=[0, 1, 1]),
        ValueError,
        "seeds",
        "allowed distinct seeds",
    ),
    (
        "silent: dense_study repeated task_seeds",
        _dense(task_seeds=[3, 3]),
        ValueError,
        "task_seeds",
        "allowed distinct seeds",
    ),
    (
        "silent: ticket_study repeated seeds",
        _study(seeds=[2, 2]),
        ValueError,
        "seeds",
        "allowed distinct seeds",
    ),
    ("silent: train repeated seeds", _train(seeds=[4, 4]), ValueError, "seeds", "distinct"),
    (
        "silent: grid repeated seeds",
        lambda: tt.grid_points({**GRID, "seeds": [0, 1, 0]}),
        ValueError,
        "grid seeds",
        "distinct",
    ),
    (
        "silent: book steps 0",
        _book_values("02_dense_training", steps=0),
        book.BookError,
        "steps",
        "allowed [1, 10000000]",
    ),
    (
        "silent: book checkpoint_every 0",
        _book_values("02_dense_training", checkpoint_every=0),
        book.BookError,
        "checkpoint_every",
        "allowed >= 1",
    ),
    (
        "silent: book n_seeds 0 in _all",
        lambda: book.resolve_parameters({"_all": {"n_seeds": 0}}, book.load_chapters()),
        book.BookError,
        "n_seeds",
        "allowed >= 1",
    ),
    (
        "silent: book clause_counts not multiples",
        _book_values("02_dense_training", clause_counts=[6, 7]),
        book.BookError,
        "clause_counts",
        "multiple of group_size=3",
    ),
    (
        "silent: book widths empty",
        _book_values("02_dense_training", widths=[]),
        book.BookError,
        "widths",
        "allowed at least one value",
    ),
    (
        "silent: book late_rewind_step beyond steps",
        _book_values("03_tickets", steps=40, late_rewind_step=50),
        book.BookError,
        "late_rewind_step",
        "allowed [0, 39]",
    ),
    (
        "silent: book unknown method",
        _book_values("03_tickets", methods=["imp", "movement"]),
        book.BookError,
        "methods",
        "choose one of",
    ),
    (
        "silent: book task_seed negative",
        _book_values("01_toy_world", task_seed=-1),
        book.BookError,
        "task_seed",
        "allowed [0,",
    ),
    (
        "silent: book --threads 0",
        lambda: _cli(book.main, ["execute", "--threads", "0"]),
        CLIError,
        "--threads",
        "allowed >= 1",
    ),
    (
        "silent: book --cell-timeout negative",
        lambda: _cli(book.main, ["execute", "--cell-timeout", "-5"]),
        CLIError,
        "--cell-timeout",
        "allowed >= 0",
    ),
    #
    # ---- unclear errors from deep inside before: now named at the door
    (
        "deep: TaskConfig where a Task is needed (train)",
        lambda: tt.train(TASK.config, MODEL, TRAINING, [0, 1]),
        TypeError,
        "task",
        "allowed a Task (draw it from the config: tt.build_task(task))",
    ),
    (
        "deep: TaskConfig where a Task is needed (evaluate)",
        lambda: tt.evaluate(INIT, TASK.config),
        TypeError,
        "task",
        "allowed a Task",
    ),
    (
        "deep: TaskConfig where a Task is needed (ticket_study)",
        _study(task=TASK.config),
        TypeError,
        "task",
        "tt.build_task",
    ),
    (
        "deep: Task where a TaskConfig is needed (dense_study)",
        _dense(task=TASK),
        TypeError,
        "task",
        "allowed a TaskConfig (pass task.config)",
    ),
    (
        "deep: Task where a TaskConfig is needed (build_task)",
        lambda: tt.build_task(TASK),
        TypeError,
        "config",
        "allowed a TaskConfig",
    ),
    (
        "deep: dict as a ModelConfig (train)",
        lambda: tt.train(TASK, {"width": 4}, TRAINING, [0, 1]),
        TypeError,
        "model",
        "allowed a ModelConfig (build one from the dict: ModelConfig(**model))",
    ),
    (
        "deep: dict as a PruningConfig (imp)",
        lambda: tt.imp(TASK, MODEL, TRAINING, [0, 1], {"rounds": 2}),
        TypeError,
        "pruning",
        "allowed a PruningConfig",
    ),
    (
        "deep: dict as a ReaderConfig (channels)",
        lambda: tt.channels(INIT, TASK, {"tau": 0.1}),
        TypeError,
        "reader",
        "allowed a ReaderConfig",
    ),
    (
        "deep: dict as a TaskConfig (build_task)",
        lambda: tt.build_task({"n_vars": 6}),
        TypeError,
        "config",
        "TaskConfig(**config)",
    ),
    (
        "deep: bare tensor as masks (train)",
        _train(masks=torch.ones(2, 4, 6)),
        TypeError,
        "masks",
        "is a bare tensor: allowed a dict",
    ),
    (
        "deep: bare tensor as masks (evaluate)",
        lambda: tt.evaluate(INIT, TASK, torch.ones(2, 4, 6)),
        TypeError,
        "masks",
        "{'W1': mask}",
    ),
    (
        "deep: bare tensor as masks (score_weights)",
        lambda: tt.score_weights("snip", INIT, TASK, masks=torch.ones(2, 4, 6)),
        TypeError,
        "masks",
        "bare tensor",
    ),
    (
        "deep: params of another task (evaluate)",
        lambda: tt.evaluate(INIT, OTHER_TASK),
        ValueError,
        "params['W1']",
        "allowed (2, 4, 7) (lanes=2, width=4, n_vars=7)",
    ),
    (
        "deep: params of another task (summarize)",
        lambda: tt.summarize(INIT, OTHER_TASK),
        ValueError,
        "params['W1']",
        "n_vars=7",
    ),
    (
        "deep: params of another task (train init)",
        lambda: tt.train(OTHER_TASK, MODEL, TRAINING, [0, 1], init=INIT),
        ValueError,
        "init['W1']",
        "n_vars=7",
    ),
    (
        "deep: params a bare tensor (channels)",
        lambda: tt.channels(INIT["W1"], TASK),
        TypeError,
        "params",
        "allowed a dict of tensors W1, b1, W2, b2",
    ),
    (
        "deep: masks of the wrong shape for evaluate",
        lambda: tt.evaluate(INIT, TASK, {"W1": torch.ones(4, 6)}),
        ValueError,
        "masks['W1']",
        "allowed (2, 4, 6)",
    ),
    (
        "deep: masks of the wrong shape for row_activity",
        lambda: tt.row_activity(INIT, TASK, {"W2": torch.ones(2, 4, 3)}),
        ValueError,
        "masks['W2']",
        "allowed (2, 3, 4)",
    ),
    (
        "deep: unknown metric",
        lambda: tt.assess_tickets(STUDY, metric="accuracy"),
        ValueError,
        "metric",
        "choose one of ('bit_accuracy', 'exact_outputs')",
    ),
    (
        "deep: not a ticket study",
        lambda: tt.assess_tickets({"imp": {}}),
        ValueError,
        "study",
        "allowed the result of tt.ticket_study",
    ),
    (
        "deep: unknown table column",
        lambda: tt.format_table({"a": {"x": torch.ones(3)}}, ["x", "y"]),
        ValueError,
        "columns",
        "choose one of ('x',)",
    ),
    (
        "deep: string path as a store",
        lambda: tt.run_sweep(GRID, store="results"),
        TypeError,
        "store",
        "allowed a Store (open the folder: tt.Store('results'))",
    ),
    (
        "deep: malformed YAML grid",
        lambda: tt.grid_points(_yaml_file("grid.yaml", "model:\n  width: [4, 8\n")),
        ValueError,
        "grid='grid.yaml'",
        "is not valid YAML (expected ',' or ']'",
    ),
    (
        "deep: malformed YAML grid in the sweep CLI",
        lambda: _cli(sweep_module.main, ["--grid", _yaml_file("g.yaml", "seeds: [1\n")]),
        CLIError,
        "grid",
        "line 2, column 1",
    ),
    (
        "deep: malformed YAML parameters file",
        lambda: book.load_params_file(Path(_yaml_file("p.yaml", "_all: {n_seeds: 2\n"))),
        book.BookError,
        "--params",
        "is not valid YAML",
    ),
    (
        "deep: grid not a mapping",
        lambda: tt.grid_points(_yaml_file("list.yaml", "- 1\n- 2\n")),
        TypeError,
        "grid",
        "allowed a mapping",
    ),
    (
        "deep: select_lanes out of range",
        lambda: tt.select_lanes(INIT, [0, 2]),
        ValueError,
        "lanes[1]",
        "allowed [0, 1]",
    ),
    (
        "deep: concat_lanes of different widths",
        lambda: tt.concat_lanes([INIT, tt.init_params(6, 3, tt.ModelConfig(5), [0])]),
        ValueError,
        "ensembles[1]['W1']",
        "width=4",
    ),
    (
        "deep: forward on inputs of another task",
        lambda: tt.forward(INIT, torch.zeros(3, 7)),
        ValueError,
        "X",
        "allowed [N, 6]",
    ),
    (
        "deep: selectivity of float locations",
        lambda: tt.selectivity(INIT, TASK, torch.zeros(2, 4, 6)),
        TypeError,
        "served",
        "allowed a bool tensor (2, 4, 6)",
    ),
    (
        "deep: mean_ci of a dict",
        lambda: tt.mean_ci({"a": 1}),
        TypeError,
        "values",
        "allowed a tensor of numbers",
    ),
    ("deep: mean_ci of a number", lambda: tt.mean_ci(3.0), ValueError, "values", "at least one"),
    (
        "deep: format_ci of a table",
        lambda: tt.format_ci(torch.ones(2, 3)),
        ValueError,
        "values",
        "allowed one quantity over seeds",
    ),
    (
        "deep: methods as one string",
        _study(methods="imp"),
        TypeError,
        "methods",
        "allowed a list of names",
    ),
    (
        "deep: seeds a set",
        _train(seeds={0, 1}),
        TypeError,
        "seeds",
        "allowed a sequence of integer seeds",
    ),
    (
        "deep: seeds a 2-d array",
        _train(seeds=np.zeros((2, 1), dtype=int)),
        TypeError,
        "seeds",
        "a list, tuple or range",
    ),
    (
        "deep: seed too large for a generator",
        _train(seeds=[0, 2**64]),
        ValueError,
        "seeds[1]",
        "[0, 4294967295]",
    ),
    ("deep: Store of a number", lambda: st.Store(3), TypeError, "root", "allowed a folder path"),
    (
        "deep: cached without a function",
        lambda: tt.cached("demo", {}, {"x": 1}),
        TypeError,
        "compute",
        "allowed a function",
    ),
    (
        "deep: summarize_checkpoints of params",
        lambda: tt.summarize_checkpoints(INIT, TASK),
        TypeError,
        "run",
        "allowed a Run",
    ),
    (
        "deep: discover without a ladder",
        lambda: tt.discover("imp", TASK, 0.2, PRUNING, [0, 1], ladder=None),
        TypeError,
        "ladder",
        "allowed a Ladder",
    ),
    (
        "deep: retrain_many masks of another width",
        lambda: tt.retrain_many(
            TASK, MODEL, TRAINING, [{"W1": torch.ones(2, 5, 6)}], [INIT], [0, 1]
        ),
        ValueError,
        "masks[0]['W1']",
        "allowed (2, 4, 6)",
    ),
    (
        "deep: retrain_many inits of another task",
        lambda: tt.retrain_many(OTHER_TASK, MODEL, TRAINING, [{}], [INIT], [0, 1]),
        ValueError,
        "inits[0]['W1']",
        "n_vars=7",
    ),
    (
        "deep: sweep workers and scheduler",
        lambda: tt.run_sweep(GRID, workers=2, scheduler="tcp://localhost:8786"),
        ValueError,
        "workers=2 and scheduler",
        "allowed one of them",
    ),
    #
    # ---- late errors before (after training started): now at the door
    (
        "late: rewind_step >= steps (ticket_study)",
        _study(pruning=tt.PruningConfig(rounds=1, rewind_step=2)),
        ValueError,
        "rewind_step=2",
        "allowed [0, 1] (training.steps=2)",
    ),
    (
        "late: rewind_step >= steps (imp)",
        lambda: tt.imp(TASK, MODEL, TRAINING, [0, 1], tt.PruningConfig(rewind_step=5)),
        ValueError,
        "rewind_step=5",
        "allowed [0, 1]",
    ),
    (
        "late: reader=None (ticket_study)",
        _study(reader=None),
        TypeError,
        "reader",
        "allowed a ReaderConfig",
    ),
    (
        "late: reader=None (dense_study)",
        _dense(reader=None),
        TypeError,
        "reader",
        "allowed a ReaderConfig",
    ),
    (
        "late: unknown method (ticket_study)",
        _study(methods=["imp", "movement"]),
        ValueError,
        "methods entry='movement'",
        "choose one of",
    ),
    (
        "late: unknown --columns in the sweep CLI",
        lambda: _cli(
            sweep_module.main,
            ["--grid", _yaml_file("ok.yaml", "seeds: 2\n"), "--columns", "accuracy"],
        ),
        CLIError,
        "--columns entry='accuracy'",
        "choose one of ('bit_accuracy',",
    ),
    (
        "late: bad --workers in the sweep CLI",
        lambda: _cli(
            sweep_module.main, ["--grid", _yaml_file("w.yaml", "{}\n"), "--workers", "-2"]
        ),
        CLIError,
        "--workers=-2",
        "allowed >= 0",
    ),
]

# The kinds of bad input of the issue, each with the cases that cover it ("store" is
# test_an_unwritable_store_fails_before_anything_is_computed below).
KINDS = {
    "masks with values other than 0 and 1": ["silent: train masks not 0/1"],
    "a NaN gain for the planted network": ["silent: planted gain NaN"],
    "duplicated seeds in a study": ["silent: dense_study repeated seeds"],
    "a parameters file whose values fail inside the chapter": ["silent: book steps 0"],
    "--threads 0": ["silent: book --threads 0"],
    "a TaskConfig where a Task is needed": ["deep: TaskConfig where a Task is needed (train)"],
    "a Task where a TaskConfig is needed": [
        "deep: Task where a TaskConfig is needed (dense_study)"
    ],
    "a dict as a config": ["deep: dict as a ModelConfig (train)"],
    "a bare tensor as masks": ["deep: bare tensor as masks (train)"],
    "parameters of another task's shape": ["deep: params of another task (evaluate)"],
    "masks of the wrong shape for evaluate": ["deep: masks of the wrong shape for evaluate"],
    "an unknown metric name": ["deep: unknown metric"],
    "a string path as a store": ["deep: string path as a store"],
    "malformed YAML in a sweep grid": ["deep: malformed YAML grid"],
    "rewind_step >= steps": ["late: rewind_step >= steps (ticket_study)"],
    "reader=None": ["late: reader=None (ticket_study)"],
    "an unknown --columns name": ["late: unknown --columns in the sweep CLI"],
}


@pytest.fixture
def no_work(monkeypatch):
    """Reading a task's inputs (any training, evaluation or reading) fails the test."""

    def work_started(self):
        raise AssertionError("work started before the inputs were checked")

    monkeypatch.setattr(tt.Task, "inputs", work_started)


def test_there_are_at_least_twenty_kinds():
    assert len(CASES) >= 20
    assert len({c[0] for c in CASES}) == len(CASES)


def test_every_kind_of_the_issue_has_cases():
    ids = {c[0] for c in CASES}
    for kind, cases in KINDS.items():
        assert cases and set(cases) <= ids, kind
    for prefix in ("silent:", "deep:", "late:"):
        assert sum(c[0].startswith(prefix) for c in CASES) >= 5, prefix


@pytest.mark.parametrize(
    ("call", "error", "name", "allowed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_parameter_is_named_with_what_is_allowed(
    call, error, name, allowed, tmp_path, monkeypatch, no_work
):
    monkeypatch.setenv(st.STORE_ENV, str(tmp_path / "store"))  # nothing may reach the store
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert name in message, message
    assert allowed in message, message
    assert "\n" not in message, message
    assert not (tmp_path / "store").exists()


def test_an_unwritable_store_fails_before_anything_is_computed(tmp_path, monkeypatch, no_work):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv(st.STORE_ENV, str(blocker / "store"))  # a folder inside a file
    grid = tmp_path / "grid.yaml"
    grid.write_text("seeds: 2\ntask: {n_vars: 6, n_clauses: 6, group_size: 2}\n")
    calls = [
        _dense(),
        _study(),
        lambda: tt.run_sweep(grid),
        lambda: tt.run_sweep(TICKET_GRID),
        lambda: tt.cached("demo", {}, lambda: pytest.fail("computed")),
    ]
    for call in calls:
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"store='{blocker / 'store'}' cannot be written"), message
        assert "allowed a writable folder" in message and "\n" not in message
    with pytest.raises(CLIError, match="cannot be written"):
        _cli(sweep_module.main, ["--grid", str(grid)])
    _cli(sweep_module.main, ["--grid", str(grid), "--list"])  # listing writes nothing
    assert blocker.read_text() == ""


# ---------------------------------------------------------------- what users naturally pass


def test_seeds_may_be_numpy_or_torch_integers_or_a_range(monkeypatch):
    monkeypatch.setenv(st.STORE_ENV, "off")
    reference = tt.train(TASK, MODEL, TRAINING, [0, 1]).final
    for seeds in (
        range(2),
        (0, 1),
        np.arange(2),
        torch.arange(2),
        [np.int64(0), np.uint8(1)],
        [torch.tensor(0), torch.tensor(1)],
    ):
        run = tt.train(TASK, MODEL, TRAINING, seeds)
        assert run.seeds == (0, 1) and all(type(s) is int for s in run.seeds)
        for name in reference:
            assert torch.equal(run.final[name], reference[name]), (seeds, name)
    assert tt.TaskConfig(seed=np.int64(3)) == tt.TaskConfig(seed=3)
    assert type(tt.TaskConfig(seed=torch.tensor(3)).seed) is int
    assert tt.make_task(seed=np.int32(2)).clauses == tt.make_task(seed=2).clauses
    assert tt.mean_ci(torch.ones(3), seed=np.int64(1))[0].item() == 1.0
    assert tt.select_lanes(INIT, np.array([1]))["W1"].shape == (1, 4, 6)


def test_a_range_of_seeds_keys_the_store_like_a_list():
    as_list = tt.ticket_study.entry(TASK, MODEL, TRAINING, [0, 1], PRUNING)
    for seeds in (range(2), np.arange(2), (0, 1)):
        assert tt.ticket_study.entry(TASK, MODEL, TRAINING, seeds, PRUNING) == as_list
    key = tt.ticket_study.key(TASK, MODEL, TRAINING, range(2), PRUNING, ["imp"])
    assert key["seeds"] == (0, 1) and key["methods"] == ("imp",)


def test_the_sweep_columns_are_what_summarize_returns():
    planted = tt.planted_network(TASK)
    assert tuple(tt.summarize(planted, TASK)) == tt.summary.SUMMARY_NAMES


def test_every_chapter_parameter_is_checked_and_the_defaults_pass():
    checks = book.chapter_checks()
    for chapter in book.code_chapters(book.load_chapters()):
        defaults = book.chapter_parameters(chapter)
        covered = {name for names, _ in checks[chapter.stem] for name in names}
        assert covered == set(defaults), chapter.stem
        book.check_values(chapter.stem, {}, defaults)
    for path in sorted((ROOT / "params").glob("*.yaml")):
        book.resolve_parameters(book.load_params_file(path), book.load_chapters(), str(path))


def test_a_stored_result_must_be_plain(tmp_path):
    store = st.Store(tmp_path)
    with pytest.raises(TypeError, match=r"demo result\['x'\] is a object.*plain tensors"):
        store.save(st.Entry.of("demo", {}, "v"), {"x": object()})
    assert not list(tmp_path.rglob("*.pt"))

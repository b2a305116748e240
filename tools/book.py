#!/usr/bin/env python
"""Execute the chapters of the toyticket book with papermill and build its website.

    python tools/book.py execute [--params FILE.yaml] [-p NAME VALUE] [-y YAML] [--out DIR]
                                 [CHAPTER ...]
    python tools/book.py site [--params FILE.yaml] [-p NAME VALUE] [--out HTML_DIR] [--no-execute]
    python tools/book.py references [CHAPTER ...]
    python tools/book.py check [--params FILE.yaml] [-p NAME VALUE] [-y YAML] [CHAPTER ...]

Chapters are the MyST Markdown text notebooks listed in _toc.yml (book/*.md). A chapter
with code cells must have exactly one code cell tagged `parameters`; papermill injects the
values of a parameters file after it. Executed notebooks are always written to a separate
folder, never over the sources.

A parameters file (YAML) maps chapter stem -> {name: value}. The `_all` section applies to
every chapter whose `parameters` cell defines the name. Unknown chapters or names are
errors (papermill itself would silently ignore them), and so are values the chapter would
reject when it runs (see `chapter_checks`).

Like papermill, single values can be given on the command line: `-p NAME VALUE` (the value
read as papermill reads it: True/False/None, an int, a float, else a string), `-r NAME VALUE`
(always a string) and `-y YAML` (a mapping, e.g. `-y "task_seeds: [0, 1, 2]"`). They override
the parameters file. With chapters named, they apply to each of them and every name must be
one of its parameters; with none named, each applies to the chapters that define it (like
`_all`). Everything is validated before a kernel starts:

    python tools/book.py execute 02_dense_training -p width 16
"""

import argparse
import ast
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "_config.yml"
TOC = ROOT / "_toc.yml"
BUILD = ROOT / "_build"
RUNS = ROOT / "runs"
REFERENCE_DIR = ROOT / "tests" / "reference"
DEFAULT_EXECUTED = BUILD / "executed"
DEFAULT_HTML = BUILD / "html"

KERNEL_NAME = "python3"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": KERNEL_NAME}
# Environment of every kernel that executes a chapter (papermill here, nbval in
# tests/reference/conftest.py). ipykernel only picks its inline backend when MPLBACKEND is
# unset, so a caller's MPLBACKEND=Agg would silently drop every figure from the outputs.
KERNEL_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
ALL_SECTION = "_all"
CHAPTER_SUFFIXES = (".md", ".ipynb", ".rst")


class BookError(Exception):
    """A problem the user has to fix; printed without a traceback."""


# --------------------------------------------------------------------------- chapters


@dataclass
class Chapter:
    docname: str  # as written in _toc.yml, e.g. "book/01_toy_world"
    source: Path  # absolute path of the text source
    nb: object = field(repr=False)  # nbformat.NotebookNode read with jupytext

    @property
    def stem(self) -> str:
        return Path(self.docname).name

    @property
    def rel(self) -> str:
        return str(self.source.relative_to(ROOT))

    @property
    def has_code(self) -> bool:
        return any(cell.cell_type == "code" for cell in self.nb.cells)


def toc_docnames(toc: Path = TOC) -> list[str]:
    """All documents of a jb-book table of contents, in reading order."""
    import yaml

    if not toc.is_file():
        raise BookError(f"table of contents not found: {toc}")
    data = yaml.safe_load(toc.read_text()) or {}
    if data.get("format") != "jb-book" or "root" not in data:
        raise BookError(f"{toc}: expected `format: jb-book` with a `root:` entry")
    names = [str(data["root"])]

    def walk(entries):
        for entry in entries or []:
            if not isinstance(entry, dict):
                raise BookError(f"{toc}: unexpected toc entry {entry!r}")
            if "glob" in entry:
                raise BookError(f"{toc}: `glob` entries are not supported by tools/book.py")
            if "file" in entry:
                names.append(str(entry["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    walk([{key: data[key]} for key in ("parts", "chapters") if key in data])
    return names


def resolve_source(docname: str) -> Path:
    stem = ROOT / docname
    if stem.suffix in CHAPTER_SUFFIXES and stem.is_file():
        return stem
    for suffix in CHAPTER_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            if suffix == ".ipynb":
                raise BookError(
                    f"{candidate.relative_to(ROOT)}: chapters must be MyST Markdown text "
                    "files (book/*.md); .ipynb files are generated and git-ignored"
                )
            return candidate
    raise BookError(f"_toc.yml entry {docname!r}: no file {docname}.md found")


def read_notebook(path: Path):
    import jupytext

    if path.suffix == ".md":
        return jupytext.read(path, fmt="md:myst")
    import nbformat

    return nbformat.v4.new_notebook()  # .rst pages: no code cells


def load_chapters() -> list[Chapter]:
    chapters = [
        Chapter(d, src, read_notebook(src)) for d in toc_docnames() for src in [resolve_source(d)]
    ]
    stems = [c.stem for c in chapters]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise BookError(f"_toc.yml: chapter file names must be unique, repeated: {duplicates}")
    return chapters


def code_chapters(chapters: list[Chapter]) -> list[Chapter]:
    return [c for c in chapters if c.has_code]


def select_chapters(chapters: list[Chapter], wanted: list[str]) -> list[Chapter]:
    """Chapters with code, optionally restricted to `wanted` (stem, docname or path)."""
    runnable = code_chapters(chapters)
    if not wanted:
        return runnable
    by_key = {}
    for c in runnable:
        for key in (c.stem, c.docname, c.rel, str(c.source)):
            by_key[key] = c
    selected = []
    for name in wanted:
        key = name.removeprefix("./")
        chapter = by_key.get(key) or by_key.get(str(Path(key).resolve()))
        if chapter is None:
            raise BookError(
                f"unknown chapter {name!r}; chapters with code in _toc.yml: "
                f"{', '.join(c.stem for c in runnable) or '(none)'}"
            )
        if chapter not in selected:
            selected.append(chapter)
    return selected


# --------------------------------------------------------------------------- parameters


def parameters_cell(chapter: Chapter):
    cells = [
        cell
        for cell in chapter.nb.cells
        if cell.cell_type == "code" and PARAMETERS_TAG in cell.metadata.get("tags", [])
    ]
    if not cells:
        raise BookError(
            f"chapter {chapter.stem} ({chapter.rel}) has code cells but no cell tagged "
            f"`{PARAMETERS_TAG}`. Add one, e.g.\n\n"
            "```{code-cell} ipython3\n:tags: [parameters]\n\nn_seeds = 2\n```"
        )
    if len(cells) > 1:
        raise BookError(
            f"chapter {chapter.stem} ({chapter.rel}) has {len(cells)} cells tagged "
            f"`{PARAMETERS_TAG}`; papermill only uses the first, keep exactly one"
        )
    return cells[0]


_NOT_LITERAL = object()


def parse_parameters(source: str, where: str = "parameters cell") -> dict:
    """Names assigned in a parameters cell -> default value (or _NOT_LITERAL)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise BookError(f"{where}: cannot parse the parameters cell: {exc}") from exc
    defaults = {}

    def value_of(node):
        if node is None:
            return _NOT_LITERAL
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return _NOT_LITERAL

    def add(target, value):
        if isinstance(target, ast.Name):
            defaults[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                add(element, _NOT_LITERAL)

    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                add(target, value_of(stmt.value))
        elif isinstance(stmt, ast.AnnAssign):
            add(stmt.target, value_of(stmt.value))
    if not defaults:
        raise BookError(f"{where}: the parameters cell assigns no names")
    return defaults


def chapter_parameters(chapter: Chapter) -> dict:
    where = f"chapter {chapter.stem} ({chapter.rel})"
    return parse_parameters(parameters_cell(chapter).source, where)


def _type_name(value) -> str:
    return type(value).__name__


def _compatible(default, value) -> bool:
    if default is _NOT_LITERAL or default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))


def check_parameters(chapter: str, given: dict, defaults: dict) -> None:
    """Reject parameter names the chapter's `parameters` cell does not define.

    `chapter` names the chapter in the message; `defaults` is what parse_parameters returns.
    Also rejects values whose type does not match a literal default (e.g. YAML reads `1e-3`
    as the string "1e-3").
    """
    allowed = sorted(defaults)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise BookError(
            f"chapter {chapter}: unknown parameter(s) {', '.join(unknown)}; its `parameters` "
            f"cell defines: {', '.join(allowed)}"
        )
    for name, value in given.items():
        default = defaults[name]
        if not _compatible(default, value):
            hint = ""
            if isinstance(value, str) and isinstance(default, list | tuple | dict):
                hint = f" (give lists and mappings with -y, e.g. -y '{name}: {default!r}')"
            raise BookError(
                f"chapter {chapter}: parameter {name} = {value!r} has type {_type_name(value)}, "
                f"but its default {default!r} has type {_type_name(default)}{hint}"
            )


def load_params_file(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        data = _toyticket().validation.read_yaml("--params", path)
    except ValueError as exc:
        raise BookError(str(exc)) from None
    data = data or {}
    if not isinstance(data, dict):
        raise BookError(f"{path}: expected a mapping of chapter -> {{parameter: value}}")
    for section, values in data.items():
        if values is None:
            data[section] = {}
        elif not isinstance(values, dict):
            raise BookError(f"{path}: section {section!r} must be a mapping of name: value")
    return data


def papermill_value(text: str):
    """A command-line value read the way `papermill -p` reads it."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def command_line_parameters(args) -> dict:
    """name -> value from -y, -p and -r (in that order of precedence, the last wins)."""
    import yaml

    values = {}
    for text in getattr(args, "yaml_parameters", None) or []:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BookError(f"-y {text!r}: invalid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise BookError(f"-y {text!r}: expected a mapping of name: value")
        values.update(data)
    for name, text in getattr(args, "parameters", None) or []:
        values[name] = papermill_value(text)
    for name, text in getattr(args, "raw_parameters", None) or []:
        values[name] = text
    bad = sorted(str(n) for n in values if not str(n).isidentifier())
    if bad:
        raise BookError(f"parameter names must be Python identifiers: {', '.join(bad)}")
    return values


def merge_command_line(params: dict, cli: dict, chapters: list[Chapter] | None) -> dict:
    """The parameters file's mapping with the command-line values added (a new dict)."""
    merged = {section: dict(values) for section, values in params.items()}
    if cli:
        for section in [c.stem for c in chapters] if chapters else [ALL_SECTION]:
            merged.setdefault(section, {}).update(cli)
    return merged


def parameters_source(args) -> str:
    parts = [_show(args.params)] if getattr(args, "params", None) else []
    if command_line_parameters(args):
        parts.append("command line")
    return " + ".join(parts) or "parameters"


def resolve_parameters(params: dict, chapters: list[Chapter], source: str = "parameters") -> dict:
    """Validate a parameters mapping against all chapters; return stem -> parameters."""
    runnable = {c.stem: c for c in code_chapters(chapters)}
    unknown = sorted(set(params) - set(runnable) - {ALL_SECTION})
    if unknown:
        raise BookError(
            f"{source}: unknown chapter(s) {', '.join(unknown)}; chapters with code: "
            f"{', '.join(runnable) or '(none)'} (or {ALL_SECTION})"
        )
    defaults = {stem: chapter_parameters(c) for stem, c in runnable.items()}
    common = params.get(ALL_SECTION, {})
    declared = set().union(*defaults.values()) if defaults else set()
    orphans = sorted(set(common) - declared)
    if orphans:
        raise BookError(
            f"{source}: {ALL_SECTION}: parameter(s) {', '.join(orphans)} defined by no chapter"
        )
    resolved = {}
    for stem, chapter_defaults in defaults.items():
        values = {k: v for k, v in common.items() if k in chapter_defaults}
        values.update(params.get(stem, {}))
        check_parameters(stem, values, chapter_defaults)
        check_values(stem, values, chapter_defaults)
        resolved[stem] = values
    return resolved


# --------------------------------------------------------------------------- parameter values


def _toyticket():
    """The toyticket package of this checkout (the one the chapters import)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import toyticket
    import toyticket.validation

    return toyticket


def chapter_checks() -> dict:
    """What each chapter builds from its parameters, as {stem: [(names, check), ...]}: each
    check builds the configs (or runs the library's own check) that the chapter's code builds
    from those parameters, so a value the chapter would reject is rejected here, with the same
    message, before anything runs. Keep in step with the chapters' code (a test checks that
    every parameter is covered)."""
    import dataclasses

    tt = _toyticket()
    from toyticket.contest import METHODS
    from toyticket.families import design_units
    from toyticket.regimes import regime_grids
    from toyticket.tickets import check_methods, check_rewind, check_tolerance
    from toyticket.validation import check_bool, check_choices, check_float, check_int, check_seeds

    def each(name, values, build):
        if not values:
            raise ValueError(f"{name}={values!r} is empty: allowed at least one value")
        for value in values:
            build(value)

    def training_02(p):  # book/02_dense_training.md builds its TrainConfig so
        training = tt.TrainConfig(
            steps=p["steps"], lr=p["lr"], optimizer="sgd", momentum=p["momentum"]
        )
        check_int("checkpoint_every", p["checkpoint_every"], 1)
        every = range(0, p["steps"] + 1, p["checkpoint_every"])
        dataclasses.replace(training, checkpoints=tuple(every))

    def design_width(name, width):  # book/06_families.md: a design puts 8 units on 8 rows
        tt.ModelConfig(width=width)
        check_int(name, width, 8, 1 << 20)

    def training_03(p):  # book/03_tickets.md and 04_precursors.md train with SGD
        tt.TrainConfig(steps=p["steps"], lr=p["lr"], optimizer="sgd", momentum=p["momentum"])

    def late_rewinding_03(p):
        late = tt.PruningConfig(p["fraction"], p["rounds"], rewind_step=p["late_rewind_step"])
        check_rewind(late.rewind_step, tt.TrainConfig(steps=p["steps"], lr=p["lr"]))

    def training_05(p):  # book/05_selection.md: SGD with checkpoints; early and probe steps
        training = tt.TrainConfig(
            steps=p["steps"],
            lr=p["lr"],
            optimizer="sgd",
            momentum=p["momentum"],
            checkpoints=tuple(p["checkpoints"]),
        )
        for name in ("early_step", "probe_step"):
            if p[name] not in training.checkpoint_steps:
                raise ValueError(
                    f"{name}={p[name]} is not a checkpoint: allowed {training.checkpoint_steps}"
                )

    def contest_levels_07(p):  # book/07_probes.md contests these levels of the ladder
        pruning = tt.PruningConfig(p["fraction"], p["rounds"])
        each(
            "levels",
            p["levels"],
            lambda lv: check_int("levels entry", lv, 1, pruning.rounds),
        )

    def benchmark_file(p):  # book/appendix_speed.md reads this file
        path = p["results"]
        if not isinstance(path, str) or not (ROOT / path).is_file():
            raise ValueError(
                f"results={path!r} is not a file: allowed the path, relative to the repository, "
                "of a JSON written by `python bench/bench_training.py --json FILE`"
            )

    def reproduction_file(p):  # book/appendix_speed.md shows this record when it exists
        path = p["reproduction"]
        if not isinstance(path, str) or not path.endswith(".json"):
            raise ValueError(
                f"reproduction={path!r} is not allowed: allowed the path, relative to the "
                "repository, of a .json written by `bash bench/full_reproduction.sh`"
            )

    seeds = (("n_seeds",), lambda p: check_int("n_seeds", p["n_seeds"], 1))
    return {
        "01_toy_world": [
            (
                ("n_vars", "n_clauses", "clause_size", "readout", "group_size", "task_seed"),
                lambda p: tt.TaskConfig(
                    n_vars=p["n_vars"],
                    n_clauses=p["n_clauses"],
                    clause_size=p["clause_size"],
                    readout=p["readout"],
                    group_size=p["group_size"],
                    seed=p["task_seed"],
                ),
            ),
            (("width",), lambda p: tt.ModelConfig(width=p["width"])),
            (
                ("widths",),
                lambda p: each("widths", p["widths"], lambda h: tt.ModelConfig(width=h)),
            ),
            (("n_init",), lambda p: check_int("n_init", p["n_init"], 2)),
            seeds,
        ],
        "02_dense_training": [
            seeds,
            (("task_seeds",), lambda p: check_seeds("task_seeds", p["task_seeds"])),
            (
                ("tuning_task_seeds",),
                lambda p: check_seeds("tuning_task_seeds", p["tuning_task_seeds"]),
            ),
            (("steps", "lr", "momentum", "checkpoint_every"), training_02),
            (
                ("lrs",),
                lambda p: each("lrs", p["lrs"], lambda r: tt.TrainConfig(lr=r, optimizer="sgd")),
            ),
            (("adam_lr",), lambda p: tt.TrainConfig(lr=p["adam_lr"], optimizer="adam")),
            (("width",), lambda p: tt.ModelConfig(width=p["width"])),
            (
                ("widths",),
                lambda p: each("widths", p["widths"], lambda h: tt.ModelConfig(width=h)),
            ),
            (
                ("clause_counts",),
                lambda p: each(
                    "clause_counts", p["clause_counts"], lambda m: tt.TaskConfig(n_clauses=m)
                ),
            ),
            (("penalty",), lambda p: tt.TrainConfig(activation_penalty=p["penalty"])),
        ],
        "03_tickets": [
            seeds,
            (("task_seeds",), lambda p: check_seeds("task_seeds", p["task_seeds"])),
            (("steps", "lr", "momentum"), training_03),
            (("adam_lr",), lambda p: tt.TrainConfig(lr=p["adam_lr"], optimizer="adam")),
            (("fraction", "rounds"), lambda p: tt.PruningConfig(p["fraction"], p["rounds"])),
            (
                ("widths",),
                lambda p: each("widths", p["widths"], lambda h: tt.ModelConfig(width=h)),
            ),
            (("main_width",), lambda p: tt.ModelConfig(width=p["main_width"])),
            (("late_rewind_step", "steps", "lr", "fraction", "rounds"), late_rewinding_03),
            (("tolerance",), lambda p: check_tolerance("tolerance", p["tolerance"])),
            (("methods",), lambda p: check_methods("methods", p["methods"])),
        ],
        "04_precursors": [
            seeds,
            (("task_seeds",), lambda p: check_seeds("task_seeds", p["task_seeds"])),
            (("steps", "lr", "momentum"), training_03),
            (("adam_lr",), lambda p: tt.TrainConfig(lr=p["adam_lr"], optimizer="adam")),
            (("fraction", "rounds"), lambda p: tt.PruningConfig(p["fraction"], p["rounds"])),
            (
                ("widths",),
                lambda p: each("widths", p["widths"], lambda h: tt.ModelConfig(width=h)),
            ),
            (("main_width",), lambda p: tt.ModelConfig(width=p["main_width"])),
            (("tolerance",), lambda p: check_tolerance("tolerance", p["tolerance"])),
            (("n_bins",), lambda p: check_int("n_bins", p["n_bins"], 1, 100)),
            (
                ("explorer_networks",),
                lambda p: check_int("explorer_networks", p["explorer_networks"], 1, 16),
            ),
        ],
        "05_selection": [
            seeds,
            (("task_seeds",), lambda p: check_seeds("task_seeds", p["task_seeds"])),
            (("width",), lambda p: tt.ModelConfig(width=p["width"])),
            (
                ("check_widths",),
                lambda p: [tt.ModelConfig(width=h) for h in p["check_widths"]],
            ),
            (("steps", "lr", "momentum", "checkpoints", "early_step", "probe_step"), training_05),
            (("adam_lr",), lambda p: tt.TrainConfig(lr=p["adam_lr"], optimizer="adam")),
            (
                ("n_targets", "width"),
                lambda p: check_int("n_targets", p["n_targets"], 1, p["width"]),
            ),
            (("n_null",), lambda p: check_int("n_null", p["n_null"], 1, 100_000)),
        ],
        "06_families": [
            seeds,
            (("task_seeds",), lambda p: check_seeds("task_seeds", p["task_seeds"])),
            (("width",), lambda p: design_width("width", p["width"])),
            (
                ("check_widths",),
                lambda p: [design_width("check_widths", h) for h in p["check_widths"]],
            ),
            (("steps", "lr", "momentum"), training_03),
            (("adam_lr",), lambda p: tt.TrainConfig(lr=p["adam_lr"], optimizer="adam")),
            (
                ("n_templates",),
                lambda p: design_units(tt.make_task(n_clauses=12, n_templates=p["n_templates"])),
            ),
            (("fraction", "rounds"), lambda p: tt.PruningConfig(p["fraction"], p["rounds"])),
            (("tolerance",), lambda p: check_tolerance("tolerance", p["tolerance"])),
            (("epsilon",), lambda p: check_float("epsilon", p["epsilon"], 0.0, 0.5)),
            (
                ("n_permutations",),
                lambda p: check_int("n_permutations", p["n_permutations"], 1, 10_000),
            ),
        ],
        "07_probes": [
            seeds,
            (("task_seeds",), lambda p: check_seeds("task_seeds", p["task_seeds"])),
            (
                ("tuning_task_seeds",),
                lambda p: check_seeds("tuning_task_seeds", p["tuning_task_seeds"]),
            ),
            (("width",), lambda p: tt.ModelConfig(width=p["width"])),
            (("steps", "lr", "momentum"), training_03),
            (("fraction", "rounds", "levels"), contest_levels_07),
            (
                ("motion_steps", "steps"),
                lambda p: each(
                    "motion_steps",
                    p["motion_steps"],
                    lambda t: check_int("motion_steps entry", t, 1, p["steps"] - 1),
                ),
            ),
            (
                ("shuffled_methods",),
                lambda p: check_choices("shuffled_methods", p["shuffled_methods"], METHODS),
            ),
            (
                ("late_rewind_step", "steps"),
                lambda p: check_int("late_rewind_step", p["late_rewind_step"], 1, p["steps"] - 1),
            ),
        ],
        "08_regime_map": [
            seeds,
            (("task_seeds",), lambda p: check_seeds("task_seeds", p["task_seeds"])),
            (("regimes",), lambda p: regime_grids(p["regimes"], [0], [0])),
            (("fraction", "rounds"), lambda p: tt.PruningConfig(p["fraction"], p["rounds"])),
            (("tolerance",), lambda p: check_tolerance("tolerance", p["tolerance"])),
            (("workers",), lambda p: check_int("workers", p["workers"], 0, 64)),
        ],
        "appendix_speed": [
            (("results",), benchmark_file),
            (("reproduction",), reproduction_file),
        ],
        "appendix_reproducibility": [
            (("show_store",), lambda p: check_bool("show_store", p["show_store"]))
        ],
    }


def check_values(chapter: str, given: dict, defaults: dict) -> None:
    """Reject values the chapter would reject when it runs (e.g. ``steps: 0``): run the
    chapter's checks (``chapter_checks``) on its defaults updated with ``given``."""
    values = {**defaults, **given}
    for names, check in chapter_checks().get(chapter, []):
        if any(values.get(name, _NOT_LITERAL) is _NOT_LITERAL for name in names):
            continue  # a default that is not a literal: the chapter computes it
        try:
            check(values)
        except (ValueError, TypeError) as exc:
            culprits = [n for n in names if n in given] or list(names)
            raise BookError(f"chapter {chapter}: parameter {', '.join(culprits)}: {exc}") from None


# --------------------------------------------------------------------------- execution


def kernel_env(threads: int = 1) -> dict:
    """KERNEL_ENV with ``threads`` and the numerics mode's pins (toyticket.numerics): a kernel
    must pin its kernels before it imports torch, whatever its first cell does."""
    from toyticket import numerics

    env = dict(KERNEL_ENV)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env.update(numerics.environment())
    return env


def prepare_notebook(chapter: Chapter):
    """The chapter as papermill runs it, recording the numerics mode its kernel runs under
    (that of this process: kernels inherit its environment, see kernel_env)."""
    import copy

    from toyticket import numerics

    nb = copy.deepcopy(chapter.nb)
    nb.metadata["toyticket"] = {"numerics": numerics.mode()}
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def execute_chapters(
    chapters: list[Chapter],
    parameters: dict,
    out_dir: Path,
    *,
    progress: bool = True,
    cell_timeout: int | None = None,
    threads: int = 1,
) -> list[Path]:
    """Run each chapter with papermill into out_dir/<stem>.ipynb (cwd = repo root)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    os.environ.update(kernel_env(threads))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, chapter in enumerate(chapters, 1):
        parameters_cell(chapter)  # fail early and clearly
        values = parameters.get(chapter.stem, {})
        output = out_dir / f"{chapter.stem}.ipynb"
        failed = output.with_name(f"{chapter.stem}.failed.ipynb")
        for stale in (output, failed):
            stale.unlink(missing_ok=True)
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "defaults"
        print(f"[{i}/{len(chapters)}] {chapter.rel} -> {_show(output)} ({shown})", flush=True)
        start = time.monotonic()
        try:
            papermill.execute_notebook(
                prepare_notebook(chapter),
                str(output),
                parameters=values,
                kernel_name=KERNEL_NAME,
                language="python",
                cwd=str(ROOT),
                progress_bar=progress,
                execution_timeout=cell_timeout,
                start_timeout=120,
            )
        except PapermillExecutionError as exc:
            if output.exists():
                output.rename(failed)
            raise BookError(
                f"chapter {chapter.stem} failed in cell {exc.exec_count}: {exc.ename}: "
                f"{exc.evalue}\n  the partially executed notebook is {_show(failed)}"
            ) from exc
        except Exception:
            if output.exists():
                output.rename(failed)
            raise
        print(f"    done in {time.monotonic() - start:.1f} s", flush=True)
        written.append(output)
    return written


def normalize_reference(nb):
    """Drop run-specific metadata so regenerating unchanged references gives no diff (the
    numerics mode, recorded by prepare_notebook, stays: nbval compares exactly only under
    the same mode)."""
    nb.metadata.pop("papermill", None)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
    return nb


# --------------------------------------------------------------------------- offline assets

# JavaScript the website needs at run time, served from the site itself so that formulas and
# widgets work with no network: npm packages pinned by version and checked against the
# registry's sha512 integrity. `npm pack` fetches each tarball once into _build/vendor/
# (a fresh clone downloads about 11 MB the first time; later builds reuse the cache).
VENDOR = BUILD / "vendor"
SITE_ASSETS = ROOT / "tools" / "site_assets"  # small files of our own, committed
VENDOR_STAGE = "_vendor"  # html_static_path entry in _config.yml; not `_static` (JB1 B.6 trap)


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # `npm view NAME@VERSION dist.integrity`
    files: tuple  # (glob inside package/, destination folder under _vendor/)


WIDGET_FONTS = ("dist/*.woff2", "dist/*.woff")
NPM_PACKAGES = (
    NpmPackage(
        "requirejs",
        "2.3.8",
        "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
        (("require.js", "widgets"),),
    ),
    NpmPackage(
        "@jupyter-widgets/html-manager",
        "1.0.15",
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
        (("dist/embed-amd.js", "widgets"), ("dist/embed.js.LICENSE.txt", "widgets"))
        # The widget CSS asks for its icon fonts next to the AMD module's URL (see
        # tools/site_assets/widgets/widgets-paths.js): @jupyter-widgets/{base,controls}.js
        # and @jupyter-widgets/html-manager/dist/libembed-amd.js.
        + tuple((g, "widgets/@jupyter-widgets") for g in WIDGET_FONTS)
        + tuple((g, "widgets/@jupyter-widgets/html-manager/dist") for g in WIDGET_FONTS),
    ),
    NpmPackage(
        "mathjax",
        "3.2.2",
        "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==",
        (
            ("es5/tex-chtml.js", "mathjax"),
            ("LICENSE", "mathjax"),
            # loaded on demand: fonts, TeX extensions (autoload), menu and accessibility
            ("es5/output/chtml/fonts/woff-v2/*", "mathjax/output/chtml/fonts/woff-v2"),
            ("es5/input/tex/extensions/*", "mathjax/input/tex/extensions"),
            ("es5/a11y/*", "mathjax/a11y"),
            ("es5/ui/*", "mathjax/ui"),
        ),
    ),
)


def _npm_integrity(data: bytes) -> str:
    import base64
    import hashlib

    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def npm_tarball(package: NpmPackage, cache: Path = VENDOR) -> Path:
    """The package's tarball in the cache, fetched with `npm pack` if missing or corrupt."""
    safe = package.name.lstrip("@").replace("/", "-")
    tarball = cache / "tarballs" / f"{safe}-{package.version}.tgz"
    if tarball.is_file() and _npm_integrity(tarball.read_bytes()) == package.integrity:
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise BookError(
            f"the website serves {package.name}@{package.version} itself and needs `npm` to "
            "fetch it once from the npm registry: install Node.js and npm "
            "(e.g. `apt-get install -y npm`) or put the tarball at " + _show(tarball)
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npm-pack-", dir=tarball.parent) as tmp:
        spec = f"{package.name}@{package.version}"
        proc = subprocess.run(
            [npm, "pack", spec, "--pack-destination", tmp, "--silent", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        packed = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(packed) != 1:
            raise BookError(
                f"`npm pack {spec}` failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        got = _npm_integrity(packed[0].read_bytes())
        if got != package.integrity:
            raise BookError(
                f"{spec}: integrity {got} does not match the pinned {package.integrity}"
            )
        packed[0].replace(tarball)
    return tarball


def vendor_assets(cache: Path = VENDOR) -> Path:
    """Assemble the folder served as the site's offline JavaScript (cached under _build/)."""
    import fnmatch
    import json
    import tarfile

    stamp_value = json.dumps([[p.name, p.version, p.integrity, p.files] for p in NPM_PACKAGES])
    own = sorted(p for p in SITE_ASSETS.rglob("*") if p.is_file())
    stamp_value += "".join(f"{p.relative_to(SITE_ASSETS)}:{p.stat().st_mtime_ns}" for p in own)
    site = cache / "site"
    stamp = cache / "site.stamp"
    if site.is_dir() and stamp.is_file() and stamp.read_text() == stamp_value:
        return site
    cache.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix="site-", dir=cache))
    for package in NPM_PACKAGES:
        with tarfile.open(npm_tarball(package, cache)) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            for pattern, dest in package.files:
                hits = [
                    m
                    for m in members
                    if fnmatch.fnmatch(m.name, f"package/{pattern}")
                    and "/" not in m.name[len(f"package/{pattern}".rsplit("/", 1)[0]) + 1 :]
                ]
                if not hits:
                    raise BookError(f"{package.name}@{package.version}: no file {pattern}")
                for member in hits:
                    target = fresh / dest / Path(member.name).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src:
                        target.write_bytes(src.read())
    if SITE_ASSETS.is_dir():
        shutil.copytree(SITE_ASSETS, fresh, dirs_exist_ok=True)
    if site.exists():
        shutil.rmtree(site)
    fresh.rename(site)
    stamp.write_text(stamp_value)
    return site


# --------------------------------------------------------------------------- site


def stage_sources(chapters: list[Chapter], executed_dir: Path, stage: Path) -> None:
    """Copy the book's pages and assets to `stage`, executed chapters as .ipynb."""
    runnable = code_chapters(chapters)
    missing = [c.stem for c in runnable if not (executed_dir / f"{c.stem}.ipynb").is_file()]
    if missing:
        raise BookError(
            f"no executed notebook for {', '.join(missing)} in {_show(executed_dir)}; "
            "run `python tools/book.py execute` (or drop --no-execute)"
        )
    skip_sources = {c.source for c in runnable}

    def ignore(folder, names):
        folder = Path(folder)
        return [
            n
            for n in names
            if n.startswith(".")
            or n in ("__pycache__", "_build")
            or n.endswith(".ipynb")
            or (folder / n) in skip_sources
        ]

    top_levels = sorted(
        {Path(c.docname).parts[0] for c in chapters if len(Path(c.docname).parts) > 1}
    )
    for top in top_levels:
        shutil.copytree(ROOT / top, stage / top, ignore=ignore)
    for c in chapters:
        if len(Path(c.docname).parts) == 1 and c not in runnable:
            shutil.copy2(c.source, stage / c.source.name)
    for c in runnable:
        target = stage / Path(c.docname).with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(executed_dir / f"{c.stem}.ipynb", target)


def jupyter_book_command() -> list[str]:
    script = Path(sys.executable).parent / "jupyter-book"
    if script.is_file():
        return [str(script)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    raise BookError("jupyter-book not found; run `bash tools/setup.sh` or install requirements.txt")


def run_with_timeout(cmd: list[str], timeout: float, cwd: Path) -> int:
    """Run cmd in its own process group; kill the whole group on timeout (like timeout -k)."""
    proc = subprocess.Popen(cmd, cwd=cwd, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise BookError(
            f"`{' '.join(cmd[:2])}` timed out after {timeout:.0f} s and was killed"
        ) from None
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def _looks_like_html_output(path: Path) -> bool:
    return not path.exists() or not any(path.iterdir()) or (path / ".buildinfo").is_file()


def build_site(
    chapters: list[Chapter], executed_dir: Path, html_out: Path, timeout: float, keep: bool
) -> Path:
    if not _looks_like_html_output(html_out):
        raise BookError(
            f"--out {_show(html_out)} exists and is not a previous HTML build; "
            "refusing to replace it"
        )
    BUILD.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="stage-", dir=BUILD))
    stage = work / "src"
    stage.mkdir()
    stage_sources(chapters, executed_dir, stage)
    shutil.copytree(vendor_assets(), stage / VENDOR_STAGE)
    cmd = jupyter_book_command() + [
        "build",
        str(stage),
        "--config",
        str(CONFIG),
        "--toc",
        str(TOC),
        "--path-output",
        str(work),
        "-W",
        "-n",
        "--keep-going",
    ]
    print(f"building the site from {_show(stage)}", flush=True)
    start = time.monotonic()
    rc = run_with_timeout(cmd, timeout, cwd=ROOT)
    if rc != 0:
        raise BookError(
            f"jupyter-book build failed (exit {rc}); warnings count as errors (-W). "
            f"Staged sources and reports are kept in {_show(work)}"
        )
    built = work / "_build" / "html"
    if html_out.exists():
        shutil.rmtree(html_out)
    html_out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(built), str(html_out))
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"site built in {time.monotonic() - start:.1f} s", flush=True)
    return html_out


# --------------------------------------------------------------------------- CLI


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _run_dir(params_file: Path | None) -> Path | None:
    return RUNS / params_file.stem if params_file is not None else None


def _executed_dir(args) -> Path:
    if args.out_executed is not None:
        return args.out_executed.resolve()
    run = _run_dir(args.params)
    return run / "notebooks" if run else DEFAULT_EXECUTED


def _resolve_args(args, chapters: list[Chapter], selected: list[Chapter] | None) -> dict:
    params = merge_command_line(
        load_params_file(args.params), command_line_parameters(args), selected
    )
    return resolve_parameters(params, chapters, parameters_source(args))


def cmd_check(args) -> None:
    chapters = load_chapters()
    selected = select_chapters(chapters, args.chapters) if args.chapters else None
    resolved = _resolve_args(args, chapters, selected)
    for c in selected or code_chapters(chapters):
        names = ", ".join(sorted(chapter_parameters(c)))
        print(f"{c.stem}: parameters {names}; run with {resolved[c.stem] or 'defaults'}")
    print("ok")


def cmd_execute(args) -> list[Path]:
    chapters = load_chapters()
    selected = select_chapters(chapters, args.chapters)
    resolved = _resolve_args(args, chapters, selected if args.chapters else None)
    out_dir = _executed_dir(args)
    written = execute_chapters(
        selected,
        resolved,
        out_dir,
        progress=not args.no_progress,
        cell_timeout=args.cell_timeout or None,
        threads=args.threads,
    )
    print(f"executed notebooks are in {_show(out_dir)}/")
    return written


def cmd_site(args) -> None:
    chapters = load_chapters()
    out_dir = _executed_dir(args)
    if args.no_execute:
        _resolve_args(args, chapters, None)
        print(f"using the executed notebooks in {_show(out_dir)}/")
    else:
        args.chapters = []
        cmd_execute(args)
    if args.out is not None:
        html_out = args.out.resolve()
    elif args.params is not None:
        html_out = _run_dir(args.params) / "html"
    else:
        html_out = DEFAULT_HTML
    build_site(chapters, out_dir, html_out, args.timeout, args.keep_stage)
    print(f"website: {html_out}/index.html")


def cmd_references(args) -> None:
    import nbformat

    chapters = load_chapters()
    selected = select_chapters(chapters, args.chapters)
    BUILD.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="references-", dir=BUILD) as tmp:
        written = execute_chapters(
            selected,
            {},
            Path(tmp),
            progress=not args.no_progress,
            cell_timeout=args.cell_timeout or None,
        )
        REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
        for path in written:
            nb = normalize_reference(nbformat.read(path, as_version=4))
            nbformat.write(nb, REFERENCE_DIR / path.name)
            print(f"wrote {_show(REFERENCE_DIR / path.name)}")
    if not args.chapters:
        keep = {f"{c.stem}.ipynb" for c in selected}
        for stale in sorted(REFERENCE_DIR.glob("*.ipynb")):
            if stale.name not in keep:
                stale.unlink()
                print(f"removed {_show(stale)} (no such chapter in _toc.yml)")
    print("review the output changes with `git diff --stat tests/reference` before committing")


def _count(low: int):
    """An argparse type: an integer >= ``low``, refused in one line otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is out of range: allowed >= {low}")
        return value

    return parse


def _positive_seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} is out of range: allowed > 0 seconds")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python tools/book.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = argparse.ArgumentParser(add_help=False)
    run.add_argument("--no-progress", action="store_true", help="no papermill progress bars")
    run.add_argument(
        "--cell-timeout",
        type=_count(0),
        default=0,
        metavar="S",
        help="seconds per cell (0: no limit)",
    )
    params = argparse.ArgumentParser(add_help=False)
    params.add_argument(
        "--params",
        type=Path,
        metavar="FILE.yaml",
        help="chapter -> {name: value} (e.g. params/full.yaml)",
    )
    params.add_argument(
        "-p",
        "--parameters",
        dest="parameters",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a parameter, as with papermill -p (repeatable; overrides --params)",
    )
    params.add_argument(
        "-r",
        "--parameters_raw",
        dest="raw_parameters",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a parameter whose value is kept as a string (papermill -r)",
    )
    params.add_argument(
        "-y",
        "--parameters_yaml",
        dest="yaml_parameters",
        action="append",
        metavar="YAML",
        help="parameters as a YAML mapping, e.g. 'task_seeds: [0, 1]' (papermill -y)",
    )
    threads = argparse.ArgumentParser(add_help=False)
    threads.add_argument(
        "--threads", type=_count(1), default=1, help="OMP/MKL threads of the kernels (default 1)"
    )

    p = sub.add_parser("check", parents=[params], help="validate chapters and a parameters file")
    p.add_argument("chapters", nargs="*", help="chapter stems (default: every chapter with code)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "execute", parents=[params, run, threads], help="execute chapters with papermill"
    )
    p.add_argument("chapters", nargs="*", help="chapter stems (default: every chapter with code)")
    p.add_argument(
        "--out",
        dest="out_executed",
        type=Path,
        metavar="DIR",
        help="folder for executed notebooks "
        "(default _build/executed, or runs/<params stem>/notebooks)",
    )
    p.set_defaults(func=cmd_execute)

    p = sub.add_parser(
        "site", parents=[params, run, threads], help="execute chapters, then build the HTML site"
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="HTML folder (default _build/html, or runs/<params stem>/html)",
    )
    p.add_argument(
        "--executed",
        dest="out_executed",
        type=Path,
        metavar="DIR",
        help="folder of executed notebooks "
        "(default _build/executed, or runs/<params stem>/notebooks)",
    )
    p.add_argument(
        "--no-execute", action="store_true", help="use the notebooks already in the executed folder"
    )
    p.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=900,
        metavar="S",
        help="limit for jupyter-book build (default 900 s)",
    )
    p.add_argument("--keep-stage", action="store_true", help="keep the staged Sphinx source folder")
    p.set_defaults(func=cmd_site)

    p = sub.add_parser(
        "references",
        parents=[run],
        help="regenerate tests/reference/<chapter>.ipynb with default parameters",
    )
    p.add_argument("chapters", nargs="*", help="chapter stems (default: all)")
    p.set_defaults(func=cmd_references)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        args.func(args)
    except BookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

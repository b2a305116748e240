"""Benchmark: the training engine against a loop of ``nn.Module``s, and against its floor.

For each regime and ensemble size S, interleaved, this measures model-steps per second (one
Adam step of one network on the full truth table) of

- engine: what ``toyticket.train`` runs on the CPU, the compiled engine
  (``toyticket.engine.train_ensemble``: whole trainings, eight networks side by side in
  vector instructions, with the truth-table factorization of the first layer);
- loop: S ``nn.Sequential(Linear, ReLU, Linear)`` modules, each with its own
  ``torch.optim.Adam`` (same lr), stepped one after the other (zero_grad / forward / backward /
  step).

Both minimize the same loss: input-weighted BCE-with-logits averaged over outputs,
``(bce * w[:, None] / n_out).sum()``, full batch on the task's truth table. Before timing, the
script checks that they compute the same thing (loss and gradients at init, parameters after
20 steps from the same init) and that the timed engine reproduces ``toyticket.train`` exactly.

The floor: with the factorization the first layer costs O(N h) additions, so GEMM FLOPs of
the naive algorithm are the wrong yardstick. What the algorithm cannot avoid are the three
products with W2 (logits, dW2, dL/dA), 2 N h o FLOPs each; the floor is their time at the
fp32 GEMM peak measured in the same run, and "% of floor" is floor time / engine time.

Everything runs on one thread. Run ``python bench/bench_training.py --help`` for the options;
``--regime all`` measures every regime in one run.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported: one thread everywhere
os.environ["MKL_NUM_THREADS"] = "1"
# MKL's fastest path for this CPU, for the loop's products and the GEMM peak: the portable
# mode's MKL_CBWR=COMPATIBLE is SSE2 (it would slow the baseline, not the engine, which does
# not call MKL). MKL_CBWR=COMPATIBLE in the environment measures the book's own mode instead.
os.environ.setdefault("MKL_CBWR", "AUTO")
import toyticket  # noqa: E402, F401, I001  (before torch: it pins the numerics mode)

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from toyticket import (  # noqa: E402
    ModelConfig,
    Params,
    Task,
    TrainConfig,
    engine,
    init_params,
    make_task,
    numerics,
    train,
)

torch.set_num_threads(1)

REGIMES: dict[str, tuple[dict[str, int], int]] = {
    # name: (make_task keyword arguments, hidden width)
    "default": ({}, 8),  # n=10 -> N=1024 rows; 12 clauses in groups of 3 -> 4 outputs
    "wide": ({}, 32),  # the claims chapters' main regime
    "wide64": ({}, 64),  # their check
    "large": ({"n_vars": 12, "n_clauses": 16, "group_size": 4}, 16),  # N=4096; 4 outputs
}
# The engine trains eight lanes at a time; every call pays a per-group setup and two logged
# evaluations (the first and last step), which a real training (2000 steps) amortizes. Time at
# least this many steps per call so that they weigh as little here as there.
ENGINE_MIN_STEPS = 200
CHECK_LANES = 37  # not a multiple of the engine's eight lanes: a padded group is checked too
CHECK_STEPS = 20
CHECK_GRAD_TOL = 1e-4  # max relative difference of the loss and the gradients at init (fp32)
# Parameters after CHECK_STEPS fp32 Adam steps: Adam turns rounding-level gradients into
# lr-sized steps, so the allowed difference is max(CHECK_PARAM_TOL, CHECK_FLOOR_FACTOR x the
# difference between the fp32 and the fp64 loop, i.e. what fp32 rounding alone produces).
CHECK_PARAM_TOL = 1e-4
CHECK_FLOOR_FACTOR = 4.0


# ---------------------------------------------------------------------------------------------
# The two sides


class Engine:
    """S lanes trained by the compiled engine, continuing from their current state: each
    ``steps(k)`` call is one ``train_ensemble`` call of k Adam steps (no logging)."""

    def __init__(self, params: Params, lr: float, task: Task) -> None:
        self.params = {name: p.numpy().copy() for name, p in params.items()}
        self.lr = lr
        _, Y = task.truth_table()
        self.Y, self.w = Y.numpy(), task.input_weights().numpy()

    def steps(self, k: int) -> dict[str, torch.Tensor]:
        checkpoints, _ = engine.train_ensemble(
            self.params,
            {},
            self.Y,
            self.w,
            steps=k,
            lr=self.lr,
            optimizer="adam",
            momentum=0.0,
            penalty=0.0,
            log_every=k,
            keep=(0, k),
        )
        return {name: torch.from_numpy(p) for name, p in checkpoints[k].items()}


def make_loop(
    params: Params, lr: float, dtype: torch.dtype = torch.float32
) -> tuple[list[nn.Sequential], list[torch.optim.Adam]]:
    """One ``nn.Sequential`` per lane holding a copy of that lane's parameters, each with its
    own Adam."""
    h, n = params["W1"].shape[1:]
    o = params["W2"].shape[1]
    models, optimizers = [], []
    for s in range(params["W1"].shape[0]):
        model = nn.Sequential(nn.Linear(n, h, dtype=dtype), nn.ReLU(), nn.Linear(h, o, dtype=dtype))
        with torch.no_grad():
            model[0].weight.copy_(params["W1"][s])
            model[0].bias.copy_(params["b1"][s])
            model[2].weight.copy_(params["W2"][s])
            model[2].bias.copy_(params["b2"][s])
        models.append(model)
        optimizers.append(torch.optim.Adam(model.parameters(), lr=lr))
    return models, optimizers


def loop_loss(model: nn.Module, X: torch.Tensor, Y: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """One module's loss: BCE-with-logits weighted by ``wo`` = w[:, None] / n_out, summed."""
    bce = F.binary_cross_entropy_with_logits(model(X), Y, reduction="none")
    return (bce * wo).sum()


def loop_steps(
    models: Sequence[nn.Module],
    optimizers: Sequence[torch.optim.Optimizer],
    X: torch.Tensor,
    Y: torch.Tensor,
    w: torch.Tensor,
    steps: int,
) -> None:
    """``steps`` full-batch Adam steps of every model, one model after the other."""
    wo = w[:, None] / Y.shape[1]  # input weight, averaged over outputs
    for _ in range(steps):
        for model, opt in zip(models, optimizers, strict=True):
            opt.zero_grad()
            loop_loss(model, X, Y, wo).backward()
            opt.step()


def stacked(models: Sequence[nn.Sequential], grad: bool = False) -> Params:
    """The loop's parameters (or their gradients) stacked like the engine's."""
    layers = {"W1": (0, "weight"), "b1": (0, "bias"), "W2": (2, "weight"), "b2": (2, "bias")}
    out = {}
    for name, (i, attr) in layers.items():
        tensors = [getattr(m[i], attr) for m in models]
        out[name] = torch.stack([t.grad if grad else t.detach() for t in tensors])
    return out


# ---------------------------------------------------------------------------------------------
# Agreement


@dataclass
class Agreement:
    """Engine vs loop on ``CHECK_LANES`` lanes from the same initialization (fp32).

    ``loss_rel``, ``grad_rel``: max relative difference of the per-lane loss and of the
    gradients at init (a loss scaling bug shows here; Adam would mostly hide it). ``param``:
    max |param difference| after ``CHECK_STEPS`` steps of ``toyticket.train``; ``param_floor``:
    the same between the fp32 and the fp64 loop (how far fp32 rounding alone moves them).
    ``step_is_train``: the timed engine step gives bitwise the parameters of ``train``."""

    loss_rel: float
    grad_rel: float
    param: float
    param_floor: float
    step_is_train: bool

    @property
    def ok(self) -> bool:
        limit = max(CHECK_PARAM_TOL, CHECK_FLOOR_FACTOR * self.param_floor)
        grads_ok = max(self.loss_rel, self.grad_rel) < CHECK_GRAD_TOL
        return grads_ok and self.param <= limit and self.step_is_train


def check_agreement(task: Task, width: int, lr: float) -> Agreement:
    """Compare engine and loop (see ``Agreement``)."""
    model = ModelConfig(width=width)
    params = init_params(task.n_vars, task.n_outputs, model, range(CHECK_LANES))
    X, Y = task.truth_table()
    w = task.input_weights()
    wo = w[:, None] / task.n_outputs

    loss, grads, _ = engine.grads({k: v.numpy() for k, v in params.items()}, {}, Y, w)
    loss, grads = torch.from_numpy(loss).float(), {k: torch.from_numpy(v) for k, v in grads.items()}
    models, _ = make_loop(params, lr)
    ref_loss = torch.stack([loop_loss(m, X, Y, wo) for m in models]).detach()
    for m in models:
        loop_loss(m, X, Y, wo).backward()
    ref_grads = stacked(models, grad=True)
    loss_rel = ((loss - ref_loss).abs().max() / ref_loss.abs().max()).item()
    grad_rel = max(
        ((grads[k] - ref_grads[k]).abs().max() / ref_grads[k].abs().max()).item() for k in grads
    )

    config = TrainConfig(steps=CHECK_STEPS, lr=lr, checkpoints=(), log_every=CHECK_STEPS)
    final = train(task, model, config, range(CHECK_LANES), init=params).final
    timed_final = Engine(params, lr, task).steps(CHECK_STEPS)
    step_is_train = all(torch.equal(timed_final[k], final[k]) for k in final)

    runs = {}
    for dtype in (torch.float32, torch.float64):
        models, optimizers = make_loop(params, lr, dtype)
        loop_steps(models, optimizers, X.to(dtype), Y.to(dtype), w.to(dtype), CHECK_STEPS)
        runs[dtype] = {k: p.double() for k, p in stacked(models).items()}
    loop32, loop64 = runs[torch.float32], runs[torch.float64]
    param = max((final[k].double() - loop32[k]).abs().max().item() for k in final)
    floor = max((loop32[k] - loop64[k]).abs().max().item() for k in final)
    return Agreement(loss_rel, grad_rel, param, floor, step_is_train)


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass
class Timing:
    """One measurement of ``steps`` steps of S lanes: wall and CPU seconds per model-step, and
    minor page faults per step (all lanes). CPU time well below wall time means that another
    job took the core; many page faults mean that malloc gave memory back to the OS and
    touched it again (see the README)."""

    wall_per_model_step: float
    cpu_per_model_step: float
    faults_per_step: float
    steps: int


@dataclass
class Row:
    """The results for one ensemble size: per-repeat timings and their medians."""

    S: int
    engine: list[Timing]
    loop: list[Timing]
    engine_steps_per_s: float  # model-steps per second: 1 / median wall time per model-step
    loop_steps_per_s: float
    ratio: float
    ratio_cpu: float  # the same ratio from CPU time: less sensitive to other jobs
    engine_us: float  # median wall time per model-step
    floor_fraction: float  # floor time / engine time
    min_cpu_over_wall: float


def floor_flops(task: Task, width: int) -> float:
    """FLOPs of one model-step that the factorized algorithm cannot avoid (N rows, h hidden,
    o outputs): the three products with W2, logits W2 A, dW2 = G A^T and dA = W2^T G, 2Nho
    each. The first layer's tables, ReLU, sigmoid, halving and Adam (O(N h) or less) are
    not counted."""
    N, h, o = 2**task.n_vars, width, task.n_outputs
    return 3 * 2.0 * N * h * o


def gemm_peak(sizes: Sequence[int] = (256, 512, 1024, 2048), repeats: int = 3) -> float:
    """Float32 GEMM throughput on one thread: best GFLOP/s over square matmuls ``a @ b`` of
    the given sizes (``repeats`` timings each, after one warm-up)."""
    best = 0.0
    g = torch.Generator().manual_seed(0)
    for n in sizes:
        a, b = torch.rand(n, n, generator=g), torch.rand(n, n, generator=g)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            best = max(best, 2.0 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def timed(run: Callable[[int], None], steps: int, lanes: int) -> Timing:
    """Time ``run(steps)``."""
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cpu0, t0 = time.process_time(), time.perf_counter()
    run(steps)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    return Timing(wall / (steps * lanes), cpu / (steps * lanes), faults / steps, steps)


def calibrate(run: Callable[[int], None], seconds: float, lanes: int) -> int:
    """Steps that make ``run(steps)`` last about ``seconds`` (this also warms ``run`` up)."""
    steps = 1
    while True:
        elapsed = timed(run, steps, lanes).wall_per_model_step * steps * lanes
        if elapsed >= min(0.2, seconds / 4):
            return max(1, math.ceil(steps * seconds / elapsed))
        steps *= 4


def bench_size(
    task: Task, width: int, S: int, lr: float, seconds: float, repeats: int, peak: float
) -> Row:
    """Engine and loop on S lanes: a calibration that also warms both up, then ``repeats`` x
    (engine, loop). Each measurement starts from the same init (fresh copies and optimizers;
    the loop after one untimed step that creates its optimizer state)."""
    params = init_params(task.n_vars, task.n_outputs, ModelConfig(width=width), range(S))
    X, Y = task.truth_table()
    w = task.input_weights()

    def fresh_engine() -> Callable[[int], None]:
        return Engine(params, lr, task).steps

    def fresh_loop() -> Callable[[int], None]:
        models, optimizers = make_loop(params, lr)
        loop_steps(models, optimizers, X, Y, w, 1)
        return lambda k: loop_steps(models, optimizers, X, Y, w, k)

    engine_n = max(ENGINE_MIN_STEPS, calibrate(fresh_engine(), seconds, S))
    loop_n = calibrate(fresh_loop(), seconds, S)
    engine_t, loop_t = [], []
    for _ in range(repeats):
        engine_t.append(timed(fresh_engine(), engine_n, S))
        loop_t.append(timed(fresh_loop(), loop_n, S))

    def median(timings: list[Timing], cpu: bool = False) -> float:
        return statistics.median(
            t.cpu_per_model_step if cpu else t.wall_per_model_step for t in timings
        )

    e, lo = 1 / median(engine_t), 1 / median(loop_t)
    floor_seconds = floor_flops(task, width) / (peak * 1e9)
    return Row(
        S=S,
        engine=engine_t,
        loop=loop_t,
        engine_steps_per_s=e,
        loop_steps_per_s=lo,
        ratio=e / lo,
        ratio_cpu=median(loop_t, cpu=True) / median(engine_t, cpu=True),
        engine_us=1e6 / e,
        floor_fraction=floor_seconds * e,
        min_cpu_over_wall=min(
            t.cpu_per_model_step / t.wall_per_model_step for t in engine_t + loop_t
        ),
    )


# ---------------------------------------------------------------------------------------------
# Main


def apply_malloc_fix() -> bool:
    """Make glibc's malloc keep freed memory instead of returning it to the OS (as the
    environment variables MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=<huge> do), so that
    re-allocated activation buffers do not page-fault. False where not available."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's malloc.h
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**30))


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (empty if unavailable)."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        return ""
    return names[0] if names else ""


def print_table(rows: Sequence[Row]) -> None:
    """The results of one regime, one line per S."""
    print(
        f"{'S':>5} {'engine steps/s':>15} {'loop steps/s':>13} {'ratio':>7} {'(cpu)':>6} "
        f"{'engine us':>10} {'% floor':>8} {'cpu/wall':>9}"
    )
    for r in rows:
        print(
            f"{r.S:>5} {r.engine_steps_per_s:>15.0f} {r.loop_steps_per_s:>13.0f} "
            f"{r.ratio:>6.1f}x {r.ratio_cpu:>5.1f}x {r.engine_us:>10.1f} "
            f"{100 * r.floor_fraction:>7.0f}% {r.min_cpu_over_wall:>9.2f}"
        )


def bench_regime(name: str, args: argparse.Namespace, peak: float) -> dict:
    """Check agreement, then time every size of one regime; print and return the results."""
    task_kwargs, width = REGIMES[name]
    task = make_task(**task_kwargs)
    lr = TrainConfig().lr
    print(
        f"\nregime {name}: n_vars={task.n_vars} (N={2**task.n_vars} rows), width={width}, "
        f"outputs={task.n_outputs}, lr={lr}"
    )
    agree = check_agreement(task, width, lr)
    print(
        f"agreement, engine vs loop, {CHECK_LANES} lanes, fp32: at init max relative diff of "
        f"loss {agree.loss_rel:.1e}, gradients {agree.grad_rel:.1e}; after {CHECK_STEPS} steps "
        f"max |param diff| {agree.param:.2e} (fp32 vs fp64 loop: {agree.param_floor:.2e}); "
        f"timed engine == train: {agree.step_is_train}"
    )
    if not agree.ok:
        raise SystemExit("engine and loop disagree beyond the tolerances: not timing")
    rows = []
    for S in args.sizes:
        rows.append(bench_size(task, width, S, lr, args.seconds, args.repeats, peak))
        print(f"  S={S} done", file=sys.stderr, flush=True)
    print_table(rows)
    floor_us = floor_flops(task, width) / (peak * 1e9) * 1e6
    print(f"floor: {floor_flops(task, width) / 1e6:.3f} MFLOP per model-step, {floor_us:.1f} us")
    return {
        "regime": name,
        "task": task_kwargs,
        "width": width,
        "lr": lr,
        "floor_flops_per_model_step": floor_flops(task, width),
        "agreement": asdict(agree),
        "rows": [asdict(r) for r in rows],
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, then per regime check agreement and time every size (and JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regime", choices=[*sorted(REGIMES), "all"], default="default")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--seconds", type=float, default=1.5, help="target time per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=str, default=None, help="write the results here")
    ap.add_argument(
        "--malloc-fix",
        action="store_true",
        help="glibc: never give freed memory back to the OS (both sides)",
    )
    args = ap.parse_args(argv)
    if min(args.sizes) < 1 or args.repeats < 1:
        ap.error("--sizes and --repeats must be at least 1")
    if args.seconds <= 0:
        ap.error("--seconds must be positive")

    start = time.perf_counter()
    if args.malloc_fix and not apply_malloc_fix():
        raise SystemExit("--malloc-fix: glibc's mallopt is not available here")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread, {cpu_name()}, "
        f"numerics {numerics.mode()}, MKL_CBWR={os.environ['MKL_CBWR']}"
        f"{'; malloc fix' if args.malloc_fix else ''}"
    )
    peak_before = gemm_peak()
    names = sorted(REGIMES, key=list(REGIMES).index) if args.regime == "all" else [args.regime]
    results = [bench_regime(name, args, peak_before) for name in names]
    peak = max(peak_before, gemm_peak())
    elapsed = time.perf_counter() - start
    print(
        f"\nsteps/s: model-steps per second, 1 / median over {args.repeats} interleaved repeats "
        f"of wall time per model-step; ratio = engine / loop, (cpu) the same from CPU time. "
        f"engine us: median wall time per model-step. % floor: the three products with W2 at "
        f"the fp32 GEMM peak on 1 thread measured here ({peak_before:.1f} GFLOP/s before the "
        f"timings, {peak:.1f} best), over the engine's time. cpu/wall: least CPU/wall of any "
        f"repeat (< 0.9: another job took the core). Total {elapsed:.0f} s."
    )
    if len(results) > 1:
        print("\nsummary, engine / loop at each size:")
        for res in results:
            cells = "  ".join(f"S={r['S']}: {r['ratio']:.1f}x" for r in res["rows"])
            print(f"  {res['regime']:<8} {cells}")
    if args.json:
        out = {
            "regimes": results,
            "sizes": args.sizes,
            "seconds": args.seconds,
            "repeats": args.repeats,
            "malloc_fix": args.malloc_fix,
            "gemm_peak_gflops": peak,
            "gemm_peak_before_gflops": peak_before,
            "torch": torch.__version__,
            "numba": engine.nb.__version__,
            "numerics": numerics.mode(),
            "mkl_cbwr": os.environ["MKL_CBWR"],
            "threads": torch.get_num_threads(),
            "cpu": cpu_name(),
            "seconds_total": elapsed,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()

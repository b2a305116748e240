"""The results store: expensive results saved on disk under a hash of what determines them.

An entry's identity (open_lth-style) is a SHA-256 over

- its ``kind`` (a short name, e.g. ``"dense_unit"``),
- its key: the fields of the config dataclasses, seeds and other arguments that determine it,
  written as canonical JSON (dataclasses as ``{"__class__": ..., field: value}``, tensors by a
  hash of their bytes),
- a code version: by default a hash of the source of the modules the computation depends on
  (their syntax tree, so comments, formatting and docstrings do not count) and of the torch and
  Python versions,
- the number of torch intra-op threads (1 unless ``OMP_NUM_THREADS`` says otherwise), which
  changes the rounding of reductions and so the last bits of results.

A change to a parameter or to that code therefore gives a new identity and recomputes; a
prose-only change to a chapter touches none of it. Results computed with other code are never
read, but they are not deleted either (delete the folder to reclaim space).

Layout: ``<store>/<kind>/<digest>.pt`` holds ``torch.save`` of plain tensors, dicts and lists
(a ``Run`` is saved through ``Run.to_dict``), and ``<store>/<kind>/<digest>.json`` a sidecar
for humans and for checking: the key, the code version, the SHA-256 and size of the ``.pt``
file. Both are written atomically (a temporary name in the same folder, then ``os.replace``),
the ``.pt`` first: the sidecar is the completeness marker. Temporary names start with ``.`` and
end with ``.tmp`` (``.<name>~<host>~<pid>~<random>.tmp``); readers never look at them, and the
next write to the folder removes those of writers that died (same host, process gone) or that
are older than an hour (any host). Files and folders get the usual permissions of the umask,
plus read access for the group (and search access for folders) where the folder they are
created in grants it: a store shared by a group stays readable by it. Before the first
computation the folder is checked writable (``Store.ensure_writable``), so that a result is
never computed only to be lost.

An entry whose sidecar is missing, unreadable or belongs to another key, or whose ``.pt`` does
not match the recorded checksum, is treated as absent and recomputed (with a warning on the
``toyticket.store`` logger); it is never read as a result. Entries load with
``torch.load(weights_only=True)``.

Location: the environment variable ``TOYTICKET_STORE`` names the folder; ``off`` disables the
store (everything is recomputed, nothing is written). By default it is ``_build/store`` in the
source checkout this package is imported from (so papermill, run from the repository root,
and nbval, run from ``tests/reference``, share it), or in the current directory when the
package is installed elsewhere. The variable is read at every call.

Using it: ``cached(kind, key, compute, version)`` for one computation, or the decorator
``stored(kind, code=[modules])``, whose key is the function's arguments::

    @stored("ticket_study", code=["toyticket.pruning", "toyticket.tickets", "toyticket.training"])
    def ticket_study(task: TaskConfig, model: ModelConfig, training: TrainConfig, seeds): ...
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import hashlib
import importlib
import inspect
import io
import json
import logging
import math
import os
import re
import secrets
import socket
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numba
import torch

from toyticket import numerics
from toyticket.validation import wrong_type

STORE_ENV = "TOYTICKET_STORE"
OFF = "off"
FORMAT = 1  # of the saved payload; part of every identity
TEMPORARY_SUFFIX = ".tmp"
STALE_SECONDS = 3600  # a temporary file this old is a dead writer's, whichever host wrote it
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_KEY_TYPES = "str, int, float, bool, None, lists/tuples, dicts with str keys, dataclasses, tensors"

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- identity


def canonical(value: Any, where: str = "key") -> Any:
    """A JSON-ready, deterministic form of a key: dataclasses become ``{"__class__": name,
    field: value}``, tuples lists, tensors ``{"__tensor__": sha256, dtype, shape}``. Anything
    else raises ``TypeError`` naming the offending part of the key."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"store {where}={value} is not finite: allowed finite numbers")
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"__class__": f"{type(value).__module__}.{type(value).__qualname__}"}
        for f in dataclasses.fields(value):
            out[f.name] = canonical(getattr(value, f.name), f"{where}.{f.name}")
        return out
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or k.startswith("__"):
                raise TypeError(
                    f"store {where} has the dict key {k!r}: keys must be str not starting with '__'"
                )
            out[k] = canonical(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return {
            "__tensor__": hashlib.sha256(data).hexdigest(),
            "dtype": str(t.dtype),
            "shape": list(t.shape),
        }
    if isinstance(value, torch.device | torch.dtype):
        return str(value)
    raise TypeError(
        f"store {where} is a {type(value).__name__} ({value!r}), which cannot be part of a "
        f"store key: allowed are {_KEY_TYPES}"
    )


def _dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


def source_hash(module: ModuleType | str) -> str:
    """SHA-256 of a module's syntax tree without docstrings: comments, formatting and
    docstrings do not change it; any change to code does."""
    if isinstance(module, str):
        module = importlib.import_module(module)
    path = getattr(module, "__file__", None)
    if path is None or not path.endswith(".py"):
        raise ValueError(f"code module {module.__name__!r} has no Python source file to hash")
    tree = ast.parse(Path(path).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def code_version(modules: Iterable[ModuleType | str], extra: str = "") -> str:
    """The version of a computation: a hash of the source of ``modules`` (see
    ``source_hash``), the torch, numba and Python versions and ``extra``."""
    parts = {
        "modules": {(m if isinstance(m, str) else m.__name__): source_hash(m) for m in modules},
        "torch": torch.__version__,
        "numba": numba.__version__,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "extra": extra,
    }
    return hashlib.sha256(_dumps(parts).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Entry:
    """The identity of one result: ``digest`` is the SHA-256 (32 hex digits kept) of
    ``document`` = {kind, version, format, key (canonical), threads, numerics}: the number of
    torch intra-op threads counts because it changes the rounding of reductions, and the
    numerics mode (``toyticket.numerics.mode``) because it decides which kernels ran, so an
    entry computed under another mode or CPU family is never read as this one."""

    kind: str
    digest: str
    document: dict = dataclasses.field(repr=False, compare=False)

    @classmethod
    def of(cls, kind: str, key: Any, version: str) -> Entry:
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise ValueError(
                f"store kind={kind!r} is not allowed: lower-case letters, digits and '_', "
                "starting with a letter, at most 64 characters"
            )
        if not isinstance(version, str):
            raise wrong_type("store version", version, "a str")
        document = {
            "kind": kind,
            "version": version,
            "format": FORMAT,
            "threads": torch.get_num_threads(),  # reduction order, hence rounding, depends on it
            "numerics": numerics.mode(),
            "key": canonical(key),
        }
        digest = hashlib.sha256(_dumps(document).encode()).hexdigest()[:32]
        return cls(kind, digest, document)


# --------------------------------------------------------------------------- values


def _plain(value: Any, where: str) -> Any:
    """``value`` with tensors on the CPU and owning their memory (a view would save its
    whole storage); rejects anything torch.load(weights_only=True) could not read back."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.untyped_storage().nbytes() != t.numel() * t.element_size() or not t.is_contiguous():
            t = t.clone(memory_format=torch.contiguous_format)
        return t
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(
        f"{where} is a {type(value).__name__}: a stored result must be a Run or plain tensors, "
        "numbers and strings in dicts, lists and tuples"
    )


def _encode(value: Any, kind: str) -> dict:
    from toyticket.training import Run

    if isinstance(value, Run):
        return {"type": "run", "value": _plain(value.to_dict(), f"{kind} result")}
    return {"type": "plain", "value": _plain(value, f"{kind} result")}


def _decode(payload: Any) -> Any:
    from toyticket.training import Run

    if not isinstance(payload, dict) or payload.get("type") not in ("run", "plain"):
        raise ValueError("not a toyticket store payload")
    if payload["type"] == "run":
        return Run.from_dict(payload["value"])
    return payload["value"]


# --------------------------------------------------------------------------- the store


def _repo_root() -> Path | None:
    """The source checkout this package was imported from, if it is one."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "toyticket").is_dir():
        return root
    return None


def default_root() -> Path:
    """``_build/store`` of the source checkout, else of the current directory."""
    return (_repo_root() or Path.cwd()) / "_build" / "store"


def _make_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents); a new folder is as open to the group as the
    folder it is created in."""
    if folder.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    shared = folder.parent.stat().st_mode & (stat.S_IRGRP | stat.S_IXGRP)
    if shared:
        os.chmod(folder, folder.stat().st_mode | shared)


def _temporary(path: Path) -> Path:
    """A fresh temporary name next to ``path`` that says who writes it (host and pid)."""
    token = secrets.token_hex(4)
    return path.with_name(
        f".{path.name}~{socket.gethostname()}~{os.getpid()}~{token}{TEMPORARY_SUFFIX}"
    )


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    _make_folder(path.parent)
    tmp = _temporary(path)
    # os.open applies the umask (tempfile.mkstemp would make the entry private: 0600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if path.parent.stat().st_mode & stat.S_IRGRP:  # a shared folder: the group reads
                os.fchmod(f.fileno(), os.fstat(f.fileno()).st_mode | stat.S_IRGRP)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files that dead writers (killed before their rename) left in
    ``folder``: those of this host whose process is gone, and any older than
    ``STALE_SECONDS``. Returns what was removed."""
    host, now, removed = socket.gethostname(), time.time(), []
    for tmp in folder.glob(f".*{TEMPORARY_SUFFIX}"):
        parts = tmp.name[1 : -len(TEMPORARY_SUFFIX)].split("~")  # name, host, pid, random
        try:
            age = now - tmp.stat().st_mtime
        except FileNotFoundError:
            continue  # its writer renamed it meanwhile
        dead = len(parts) == 4 and parts[1] == host and parts[2].isdigit()
        dead = dead and not _alive(int(parts[2]))
        if dead or age > STALE_SECONDS:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


class Store:
    """A results folder (``root``), or a disabled store (``root=None``) that always computes.

    ``stats`` counts per kind ``"hit"``, ``"computed"`` and ``"corrupt"`` events of this
    object."""

    def __init__(self, root: str | os.PathLike | None) -> None:
        if root is not None and not isinstance(root, str | os.PathLike):
            raise wrong_type("root", root, "a folder path, or None (a disabled store)")
        self.root = None if root is None else Path(root).expanduser().resolve()
        self.stats: Counter[tuple[str, str]] = Counter()
        self._writable = False

    def __repr__(self) -> str:
        return f"Store({str(self.root) if self.root else None!r})"

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def ensure_writable(self) -> None:
        """Create the folder and write (then remove) a probe file in it: a folder that cannot
        hold results fails here, before anything is computed, not when the first result is
        saved (and lost). Checked once per object; a disabled store passes."""
        if self.root is None or self._writable:
            return
        try:
            _make_folder(self.root)
            probe = _temporary(self.root / ".probe")
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ValueError(
                f"store={str(self.root)!r} cannot be written ({exc.strerror or exc}): allowed a "
                f"writable folder (set {STORE_ENV} to one, or to {OFF!r})"
            ) from None
        self._writable = True

    def paths(self, entry: Entry) -> tuple[Path, Path]:
        """The entry's ``.pt`` file and its ``.json`` sidecar."""
        if self.root is None:
            raise RuntimeError("the store is disabled (TOYTICKET_STORE=off)")
        folder = self.root / entry.kind
        return folder / f"{entry.digest}.pt", folder / f"{entry.digest}.json"

    def load(self, entry: Entry) -> tuple[bool, Any]:
        """(True, value) for a complete, intact entry; (False, None) when it is absent,
        partial or corrupt (then counted as ``"corrupt"`` and logged)."""
        if self.root is None:
            return False, None
        data_path, meta_path = self.paths(entry)
        if not meta_path.is_file():
            return False, None  # never written, or killed before the sidecar: incomplete
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("key_document") != entry.document:
                raise ValueError("its sidecar belongs to another key")
            data = data_path.read_bytes()
            if len(data) != meta["bytes"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
                raise ValueError("its data does not match the recorded size and checksum")
            value = _decode(torch.load(io.BytesIO(data), weights_only=True))
        except Exception as exc:  # any defect means: not a result
            self.stats["corrupt", entry.kind] += 1
            log.warning("store entry %s/%s is unusable (%s); recomputing", *entry_id(entry), exc)
            return False, None
        self.stats["hit", entry.kind] += 1
        return True, value

    def save(self, entry: Entry, value: Any) -> None:
        """Write the entry atomically: the data first, then the sidecar that completes it."""
        if self.root is None:
            return
        buffer = io.BytesIO()
        torch.save(_encode(value, entry.kind), buffer)
        data = buffer.getvalue()
        data_path, meta_path = self.paths(entry)
        meta = {
            "kind": entry.kind,
            "digest": entry.digest,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "key_document": entry.document,
        }
        if data_path.parent.is_dir():
            remove_stale_temporaries(data_path.parent)
        _atomic_write(data_path, data)
        _atomic_write(meta_path, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())

    def cached(self, kind: str, key: Any, compute: Callable[[], Any], version: str = "") -> Any:
        """The stored result for (kind, key, version), or ``compute()`` saved under it."""
        if not callable(compute):
            raise wrong_type("compute", compute, "a function of no arguments")
        entry = Entry.of(kind, key, version)
        found, value = self.load(entry)
        if found:
            return value
        if _COLLECTING:
            value = compute()
            _COLLECTING[-1].append((entry, value))
            return value
        self.ensure_writable()  # before computing: a result that cannot be saved is lost
        value = compute()
        self.stats["computed", kind] += 1
        self.save(entry, value)
        return value


_COLLECTING: list[list[tuple[Entry, Any]]] = []


@contextlib.contextmanager
def read_only() -> Iterator[list[tuple[Entry, Any]]]:
    """Within it, stored functions of this process read the store but never write it: what is
    missing is computed, returned, and collected in the list this yields as (entry, value)
    pairs, innermost first, for the process that owns the store to ``save`` (a sweep's
    workers run so)."""
    collected: list[tuple[Entry, Any]] = []
    _COLLECTING.append(collected)
    try:
        yield collected
    finally:
        _COLLECTING.pop()


def entry_id(entry: Entry) -> tuple[str, str]:
    return entry.kind, entry.digest


_STORES: dict[Path | None, Store] = {}


def get_store() -> Store:
    """The store that ``TOYTICKET_STORE`` selects now (see the module docstring). One object
    per folder and process, so its ``stats`` count this session's hits and computations."""
    setting = os.environ.get(STORE_ENV, "").strip()
    if setting.lower() == OFF:
        root = None
    else:
        root = Path(setting or default_root()).expanduser().resolve()
    if root not in _STORES:
        _STORES[root] = Store(root)
    return _STORES[root]


def cached(kind: str, key: Any, compute: Callable[[], Any], version: str = "") -> Any:
    """``get_store().cached(...)``: the stored result, or ``compute()`` saved."""
    return get_store().cached(kind, key, compute, version)


class StoredFunction:
    """A function whose results live in the store, keyed by its arguments (see ``stored``).

    ``fn`` is the plain function (no store); ``key(*args, **kwargs)`` the key of a call;
    ``entry(...)`` its identity; ``version`` the code version (fixed when decorated)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        kind: str,
        code: Sequence[ModuleType | str],
        ignore: Sequence[str] | None,
        check: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.fn, self.kind, self.check = fn, kind, check
        self.signature = inspect.signature(fn)
        if ignore is None:  # default: leave out a `progress` argument if there is one
            ignore = [name for name in ("progress",) if name in self.signature.parameters]
        self.ignore = tuple(ignore)
        unknown = sorted(set(self.ignore) - set(self.signature.parameters))
        if unknown:
            raise ValueError(
                f"stored({kind!r}): ignore={unknown} names no parameter of the function: allowed "
                f"names of its parameters {list(self.signature.parameters)}"
            )
        Entry.of(kind, {}, "")  # validate kind now
        modules = list(code) or [fn.__module__]
        self.version = code_version(modules, extra=f"{fn.__module__}.{fn.__qualname__}")
        functools.update_wrapper(self, fn)

    def arguments(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The call's arguments by name, defaults filled in, validated and normalized by
        ``check`` (if given)."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        return arguments if self.check is None else self.check(arguments)

    def key(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The call's checked arguments by name, ``ignore``d ones left out."""
        return self._key(self.arguments(*args, **kwargs))

    def _key(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in arguments.items() if k not in self.ignore}

    def entry(self, *args: Any, **kwargs: Any) -> Entry:
        return Entry.of(self.kind, self.key(*args, **kwargs), self.version)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        arguments = self.arguments(*args, **kwargs)  # checked before the store is touched
        store = get_store()
        if not store.enabled:
            return self.fn(**arguments)
        return store.cached(
            self.kind, self._key(arguments), lambda: self.fn(**arguments), self.version
        )


def stored(
    kind: str,
    code: Sequence[ModuleType | str] = (),
    ignore: Sequence[str] | None = None,
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], StoredFunction]:
    """Decorator: keep the function's results in the store under ``kind``.

    The key is the call's arguments (config dataclasses, seeds, ...; the names in ``ignore``
    do not count, by default ``progress`` if the function has it). The version hashes the
    source of the ``code`` modules (default: the function's own module), so list every module
    whose code the result depends on. The result must be a ``Run`` or plain tensors in dicts
    and lists. ``check``: the function's door, given the call's arguments by name (defaults
    filled in) and returning them validated and normalized; it runs before the key is taken,
    so bad arguments neither compute nor reach the store. The function is then called with
    its arguments by name.

    The one-line way to keep a study in the store: decorate its function, e.g.
    ``@stored("ticket_study", code=["toyticket.tickets", "toyticket.pruning", ...])``, and
    call it as before. Arguments must be configs, seeds, numbers, strings or tensors."""

    def decorate(fn: Callable[..., Any]) -> StoredFunction:
        return StoredFunction(fn, kind, code, ignore, check)

    return decorate

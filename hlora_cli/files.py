"""Writing the user's files safely: atomic replacement with the permissions a plain write would
give, and the checks every command makes on its outputs before any work starts."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from hlora_cli.errors import HloraError

T = TypeVar("T")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it over `path`. The file gets
    the mode a plain open() would (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise _unwritable(path, e) from e
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) or isinstance(e, RuntimeError) and "writ" in str(e):  # a full disk, say
            raise _unwritable(path, e) from e
        raise


def _unwritable(path: Path, e: BaseException) -> HloraError:
    """The error a failed write gives: the file the user asked for (never our hidden temporary
    beside it) and the system's reason."""
    reason = e.strerror if isinstance(e, OSError) and e.strerror else " ".join(str(e).split())[:200]
    return HloraError(f"{path}: cannot be written ({reason})")


def check_output_dir(
    out: str | Path, overwrite: bool, what: str = "output directory", inputs: Iterable[str | Path | None] = ()
) -> Path:
    """An output directory a command will create: refused when something is already there (unless
    `overwrite`, and then only a directory), when it is, lies in or holds an input (check_apart), or
    when it cannot be made. Checked before any work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HloraError(f"{out}: is a file; give a directory for the {what}")
    check_apart(out, inputs, what)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise HloraError(f"{out}: exists and is not empty; give another {what} or --overwrite to replace it")
    check_parent(out, what)
    return out


def atomic_dir(out: Path, write: Callable[[Path], T]) -> T:
    """Call write(tmp) on a new directory beside `out`, then put it in place of `out` and return
    what write returned: a crash or an error leaves `out` as it was, never half written. What
    `out` held before is removed only after the new directory is complete (the caller has checked
    it may be replaced: check_output_dir)."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _clear_killed_writes(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise _unwritable(out, e) from e
    try:
        result = write(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / out.name)
        try:
            os.replace(tmp, out)
        except BaseException:
            if old is not None:  # put the user's directory back
                os.replace(old / out.name, out)
                old.rmdir()
            raise
        if old is not None:
            shutil.rmtree(old)
        return result
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _clear_killed_writes(out: Path) -> None:
    """What an atomic_dir write killed half-way left beside OUT (hidden `.OUT.XXXXXXXX` folders,
    ours by name): the user's previous OUT put back if the kill came between the two renames, the
    rest removed, so reruns leave no hidden folders behind."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(old\.)?[a-z0-9_]{{8}}")
    for path in sorted(out.parent.glob(f".{out.name}.*")):
        if not (path.is_dir() and pattern.fullmatch(path.name)):
            continue
        kept = path / out.name
        if path.name.startswith(f".{out.name}.old.") and kept.is_dir() and not out.exists():
            os.replace(kept, out)
        shutil.rmtree(path, ignore_errors=True)


def check_output(out: str | Path, inputs: Iterable[str | Path | None] = (), what: str = "output") -> Path:
    """An output file the command may write: not a directory, apart from its inputs (check_apart),
    in a directory that exists or can be made. Checked before any work."""
    out = Path(out)
    if out.is_dir():
        raise HloraError(f"{out}: is a directory; give a file name for the {what}")
    check_apart(out, inputs, what)
    check_parent(out, what)
    return out


def check_apart(out: str | Path, inputs: Iterable[str | Path | None], what: str = "output") -> None:
    """The one rule for every command's outputs: an output is not one of its inputs, not inside an
    input directory (a model, a backbone, a corpus folder), and an output directory holds no input,
    all compared after resolving links. Inputs that do not exist (a hub id), empty and None are
    skipped."""
    out = Path(out)
    resolved = out.resolve()
    for source in inputs:
        if source is None or str(source) == "" or not Path(source).exists():
            continue
        src = Path(source).resolve()
        if src == resolved:
            raise HloraError(f"{out}: the {what} would overwrite the input {source}; choose another name")
        if src.is_dir() and resolved.is_relative_to(src):
            raise HloraError(f"{out}: the {what} would be written inside the input {source}; choose a path outside it")
        if src.is_relative_to(resolved):
            raise HloraError(f"{out}: the {what} would replace the input {source}, which it holds; choose another path")


def check_not_listed(outputs: Iterable[str | Path], listed: Iterable[str], what: str = "audio file") -> None:
    """No output is one of the files an input lists (a manifest's audio): only an output that
    exists can be one, and only a listed file of its name (or its link target's) is resolved, so a
    million-row manifest costs no million system calls."""
    names: dict[str, Path] = {}
    for out in map(Path, outputs):
        if out.exists():
            names[out.name] = names[out.resolve().name] = out
    if not names:
        return
    for path in listed:
        out = names.get(os.path.basename(path))
        if out is not None and Path(path).resolve() == out.resolve():
            raise HloraError(f"{out}: the output would overwrite the {what} {path}, which the input lists")


def check_parent(path: Path, what: str = "output") -> None:
    """The nearest existing ancestor of `path` must be a directory we may write in (so `path` can be
    made): found before a model is loaded, not after the work."""
    parent = Path(path).parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise HloraError(f"{path}: {parent} is a file, so the {what} cannot be written there")
    if not os.access(parent, os.W_OK | os.X_OK):  # a read-only folder or file system
        raise HloraError(f"{path}: {parent} is not writable, so the {what} cannot be written there")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_stem(name: str, limit: int = 100) -> str:
    """`name` (an utterance or recording id) as a file name that stays in its folder on every
    file system: no `/`, no leading dot, ASCII letters, digits, `.`, `_` and `-` only."""
    return _UNSAFE.sub("_", name).lstrip(".")[:limit]


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj: Any, **kwargs: Any) -> str:
    """Strict JSON (RFC 8259 has no NaN or Infinity): a non-finite number becomes null."""
    return json.dumps(_finite(obj), allow_nan=False, ensure_ascii=False, **kwargs)

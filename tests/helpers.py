"""The ways tests run `hlora`: `hlora` in a real process (signals, environment, the installed entry
point), `run_cli` / `run_main` / `run_main_output` through the real entry point in this process (no
interpreter start-up), and `snapshot` to tell that a command wrote nothing."""

import os
import subprocess
import sys


def hlora(*args, check: bool = False) -> subprocess.CompletedProcess:
    """`hlora ARGS` in a process of its own; with `check`, it must exit 0."""
    r = subprocess.run(
        [sys.executable, "-m", "hlora_cli.cli.main", *(str(a) for a in args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check:
        assert r.returncode == 0, r.stderr[-2000:]
    return r


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli(*args, check=True):
    """The CLI in this process (a subprocess costs seconds of imports per call), through the real
    entry point: the exit status and the error line are the ones `hlora` gives."""
    code, out, err = run_main_output(*args)
    r = Result(code, out, err.removesuffix("\n"))  # one line, as the tests compare it
    if check:
        assert r.returncode == 0, (r.stderr, r.stdout[-2000:])
    return r


def run_main(*args) -> tuple[int, str]:
    """`hlora ARGS` through the real entry point, `hlora_cli.cli.main.main`, in this process:
    (exit status, what it printed on stderr). Unlike run_cli, nothing is inferred: the status is
    the one main() exits with."""
    code, _, err = run_main_output(*args)
    return code, err


def run_main_output(*args) -> tuple[int, str, str]:
    """As run_main, with stdout too: (exit status, stdout, stderr)."""
    import contextlib
    import io
    import os
    import sys

    from hlora_cli.cli import main as cli_main

    stdout, stderr, argv = io.StringIO(), io.StringIO(), sys.argv
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"  # tables as wide as a terminal would show them, for the tests to read
    sys.argv = ["hlora", *(str(a) for a in args)]
    cli_main._state["debug"] = False
    err_file = cli_main.err._file  # None: it follows sys.stderr (pytest capture), so restore that
    cli_main.err.file = stderr
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            cli_main.main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv = argv
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
        cli_main.err._file = err_file
    return code, stdout.getvalue(), stderr.getvalue()


def snapshot(root) -> dict[str, str]:
    """Every path below `root` -> the sha256 of its bytes ("dir" for a folder): equal snapshots before
    and after a command mean it changed, added and removed nothing there."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }

"""The hlora CLI run in the test's own process: a subprocess costs seconds of imports per call."""

from hlora_cli.errors import HloraError


class Result:
    def __init__(self, r):
        self.returncode = 2 if isinstance(r.exception, HloraError) else r.exit_code
        self.stdout = r.stdout
        self.stderr = f"error: {r.exception}" if r.exception else ""


def run_cli(*args, check=True):
    """The CLI in this process (a subprocess costs seconds of imports per call); HloraError is
    what `hlora` prints as a one-line error with exit 2."""
    from typer.testing import CliRunner

    from hlora_cli.cli.main import app

    r = Result(CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"}))
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
    import sys

    from hlora_cli.cli import main as cli_main

    stdout, stderr, argv = io.StringIO(), io.StringIO(), sys.argv
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

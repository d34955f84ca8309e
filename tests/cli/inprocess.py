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

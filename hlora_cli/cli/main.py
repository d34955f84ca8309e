"""The `hlora` Typer app. User errors (HloraError) print as one line without a traceback;
`hlora --debug ...` shows the traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from hlora_cli import __version__
from hlora_cli.cli import ablate, backbone, decode, export, info, lid, lm, normalize, prepare, score, train
from hlora_cli.errors import HloraError
from text_normalization.errors import LanguageError

app = typer.Typer(
    help="Multilingual CTC ASR on frozen encoders with shared, routed and hierarchical LoRA (HLoRA).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("info")(info.info)
app.add_typer(prepare.app, name="prepare")
app.command("normalize")(normalize.normalize)
app.command("train")(train.train)
app.command("fuse")(train.fuse)
app.command("distill")(train.distill)
app.command("lid")(lid.lid)
app.command("decode")(decode.decode)
app.command("score")(score.score_cmd)
app.add_typer(lm.app, name="lm")
app.command("ablate")(ablate.ablate)
app.add_typer(backbone.app, name="backbone")
app.add_typer(export.app, name="export")
err = Console(stderr=True)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"hlora {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug


def main() -> None:
    import warnings

    # A terminal in a non-UTF-8 locale (LANG=C) cannot encode a Korean id or text: print such a
    # character as an escape instead of failing after the work is done.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and "utf" not in (stream.encoding or "").lower():
            stream.reconfigure(errors="backslashreplace")

    # Warnings (a truncated audio file, say) as one line each, like errors.
    warnings.showwarning = lambda message, *args, **kwargs: err.print(
        f"[yellow]warning:[/] {message}", soft_wrap=True, highlight=False
    )
    try:
        # Outside standalone mode click returns a command's typer.Exit code instead of exiting.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except (HloraError, LanguageError) as e:  # text_normalization's, where a code reached it unchecked
        if _state["debug"]:
            raise
        err.print(f"[bold red]error:[/] {e}", soft_wrap=True, highlight=False)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as e:  # usage errors (typer's own click): one line, exit 2
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()
        else:
            ctx = getattr(e, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            err.print(f"[bold red]error:[/] {e.format_message()}{hint}", soft_wrap=True, highlight=False)
        sys.exit(e.exit_code)
    except OSError as e:  # a full disk, a permission: the file and the reason, no traceback
        if _state["debug"]:
            raise
        where = f"{e.filename}: " if e.filename else ""
        err.print(f"[bold red]error:[/] {where}{e.strerror or e}", soft_wrap=True, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()

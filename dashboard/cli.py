"""The ``whylm`` command: ``dashboard``, plus the ``explain``/``signals``/``causal`` subcommands that
the ``explain`` and ``causal`` packages register.

Example:
    $ whylm dashboard                          # http://127.0.0.1:8501, embedded model
    $ whylm dashboard --port 8600 --model ./my-model --data-dir ./audits
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from explain.errors import WhylmError, one_line, report_internal_error

APP = Path(__file__).resolve().parent / "app.py"

EPILOG = """examples:
  whylm dashboard                                  open the dashboard on the embedded model
  whylm dashboard --port 8600 --data-dir ./audits  another port, history in ./audits/audits.sqlite
  whylm explain "The capital of France is" --target " Paris" --json -
  whylm causal propose smoking "tar deposits" "lung cancer"
  whylm audit outputs.jsonl --out audit.parquet --engine processes --workers 2
"""

DASHBOARD_EPILOG = """example:
  whylm dashboard --host 127.0.0.1 --port 8501 --model /path/to/hf-model --data-dir ~/whylm-audits

The history (audit store) is saved in DATA_DIR/audits.sqlite (default: the user data folder).
API keys for LLM backends come from the environment (OPENAI_API_KEY) and are never stored.
"""


def dashboard_command(args: argparse.Namespace) -> int:
    """Run the Streamlit app in this process's Python; return its exit status."""
    if not 0 < args.port < 65536:
        raise WhylmError(f"port {args.port} is out of range 1-65535")
    env = dict(os.environ)
    if args.model:
        path = Path(args.model).expanduser()
        env["WHYLM_MODEL"] = str(path.resolve()) if path.exists() else args.model
    if args.data_dir:
        data_dir = Path(args.data_dir).expanduser().resolve()
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WhylmError(f"cannot create data dir {data_dir}: {exc.strerror or exc}") from None
        env["WHYLM_DATA_DIR"] = str(data_dir)
    root = str(APP.parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", args.host,
        "--server.port", str(args.port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]
    print(f"whylm dashboard on http://{args.host}:{args.port} (Ctrl+C to stop)", file=sys.stderr)
    return run_child(cmd, env)


def run_child(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` and wait; SIGTERM/SIGHUP sent to us go to the child, so no server is orphaned."""
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    forwarded = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s]
    previous = {s: signal.signal(s, forward) for s in forwarded}
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # Ctrl+C reaches the child too; wait for it to stop
                continue
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def add_dashboard_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``whylm dashboard``."""
    p = sub.add_parser(
        "dashboard", help="open the Streamlit dashboard (Explain, Signals, Causal, History)",
        description="Start the whylm dashboard: a Streamlit app on the embedded model.",
        epilog=DASHBOARD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--model", default=None,
                   help="default model: a local folder with a Hugging Face causal LM (default: embedded)")
    p.add_argument("--data-dir", default=None,
                   help="folder for the history database audits.sqlite (default: user data dir)")
    p.set_defaults(func=dashboard_command)


def build_parser() -> argparse.ArgumentParser:
    """The top-level ``whylm`` parser with every subcommand that is installed."""
    parser = argparse.ArgumentParser(
        prog="whylm",
        description="Explain what a language model did and why: token attribution, hallucination "
                    "signals, LLM-proposed causal graphs checked with DoWhy.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_dashboard_parser(sub)
    try:
        from explain.cli import add_parsers
    except ImportError:
        pass  # explain's commands not installed yet (development checkout)
    else:
        add_parsers(sub)
    try:
        from explain.audit.cli import add_parser as add_audit_parser
    except ImportError:
        pass
    else:
        add_audit_parser(sub)
    try:
        from causal.cli import add_parser
    except ImportError:
        pass
    else:
        add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``whylm`` console script; returns the exit status.

    Exit status: 0 success, 1 a negative verdict where the command has one (a rejected graph),
    2 bad input (a :class:`explain.WhylmError`: ``error: <one line>``), 3 an internal error (one line
    with the path of the log file holding the traceback), 130 interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(func(args) or 0)
    except WhylmError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in whylm, not the user's input: say so, keep the traceback
        print(f"error: {report_internal_error(exc, f'whylm {args.command}')}", file=sys.stderr)
        return 3

if __name__ == "__main__":
    sys.exit(main())

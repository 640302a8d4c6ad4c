"""The ``whylm`` command: ``dashboard``, plus the ``explain``/``signals``/``fit-screen``/``causal`` subcommands that
the ``explain`` and ``causal`` packages register.

Examples:
    $ whylm dashboard                          # http://127.0.0.1:8501, embedded model
    $ whylm dashboard --port 8600 --model ./my-model --data-dir ./audits
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from causal.cli import add_parser as add_causal_parser
from explain.audit.cli import add_parser as add_audit_parser
from explain.cli import add_parsers as add_explain_parsers
from explain.cli_io import check_argv, check_outputs
from explain.errors import WhylmError, one_line, report_internal_error

MODEL_ENV = "WHYLM_MODEL"            # dashboard.models reads these two
MODEL_DIRS_ENV = "WHYLM_MODEL_DIRS"

APP = Path(__file__).resolve().parent / "app.py"

EPILOG = """examples:
  whylm dashboard                                  open the dashboard on the embedded model
  whylm dashboard --port 8600 --data-dir ./audits  another port, history in ./audits/audits.sqlite
  whylm explain "The capital of France is" --target " Paris" --json -
  whylm causal propose smoking "tar deposits" "lung cancer"
  whylm audit outputs.jsonl --out audit.parquet --engine processes --workers 2
"""

DASHBOARD_EPILOG = """example:
  whylm dashboard --host 127.0.0.1 --port 8501 --model-dir ~/models --data-dir ~/whylm-audits

  whylm dashboard --llm-endpoint http://127.0.0.1:8000/v1 --llm-endpoint https://llm.example/v1 --api-key-env LAB_KEY

Models: the dashboard loads only the embedded model and the folders under --model-dir (each
subfolder with a config.json); nothing typed in the browser is opened as a path or a hub id.
The history (audit store) is saved in DATA_DIR/audits.sqlite (default: the user data folder).
LLM servers for the Causal page are fixed here, never typed in the browser; --api-key-env NAME
gives the --llm-endpoint before it the key in $NAME (https, or a server on this machine). OpenAI
is offered when $OPENAI_API_KEY is set, and that key goes only to OpenAI. Keys are never stored.
"""


class _InOrder(argparse.Action):
    """Collect --llm-endpoint and --api-key-env in the order given, so each key variable pairs
    with the endpoint before it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((option_string, str(values)))
        setattr(namespace, self.dest, items)


def dashboard_command(args: argparse.Namespace) -> int:
    """Run the Streamlit app in this process's Python; return its exit status."""
    if not 0 < args.port < 65536:
        raise WhylmError(f"port {args.port} is out of range 1-65535")
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")  # the server never fetches from the hub on a page's behalf
    if args.model_dir:
        env[MODEL_DIRS_ENV] = os.pathsep.join(str(_folder(d, "--model-dir")) for d in args.model_dir)
    if args.model:
        folder = _folder(args.model, "--model")
        if not (folder / "config.json").is_file():
            raise WhylmError(f"--model {args.model}: no config.json there; give a folder saved by "
                             "save_pretrained (the dashboard loads no hub ids)")
        env[MODEL_ENV] = str(folder)
    if args.data_dir:
        data_dir = Path(args.data_dir).expanduser().resolve()
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WhylmError(f"cannot create data dir {data_dir}: {exc.strerror or exc}") from None
        env["WHYLM_DATA_DIR"] = str(data_dir)
    if getattr(args, "llm_endpoints", None):
        from dashboard.llm_picker import ENDPOINTS_ENV, endpoints_env, endpoints_from_options

        env[ENDPOINTS_ENV] = endpoints_env(endpoints_from_options(args.llm_endpoints))
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
    if not is_loopback(args.host):
        print(f"warning: {args.host} is not a loopback address and the dashboard has no login: "
              "anyone who reaches this port can run models and read the History; put an "
              "authenticating proxy in front (README, 'Running the dashboard safely')",
              file=sys.stderr)
    return run_child(cmd, env)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine.

    Returns:
        True for ``localhost`` and loopback IPs (``127.0.0.0/8``, ``::1``).

    Examples:
        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _folder(value: str, flag: str) -> Path:
    """``value`` as a resolved existing folder, else a :class:`WhylmError` naming ``flag``."""
    path = Path(value).expanduser()
    if not path.is_dir():
        raise WhylmError(f"{flag} {value}: no such folder")
    return path.resolve()


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
        "dashboard", help="open the Streamlit dashboard (Explain, Signals, Causal, Audits, History)",
        description="Start the whylm dashboard: a Streamlit app on the embedded model.",
        epilog=DASHBOARD_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--model", default=None,
                   help="default model: a local folder with a Hugging Face causal LM (default: embedded)")
    p.add_argument("--model-dir", action="append", default=None, metavar="DIR",
                   help="offer the model folders in DIR (or DIR itself when it holds a model); "
                        "repeatable; the only folders the dashboard loads models from "
                        "(default: the embedded model and the whylm cache)")
    p.add_argument("--data-dir", default=None,
                   help="folder for the history database audits.sqlite (default: user data dir)")
    p.add_argument("--llm-endpoint", dest="llm_endpoints", action=_InOrder, metavar="URL",
                   help="an OpenAI-compatible server the Causal page may use (repeatable)")
    p.add_argument("--api-key-env", dest="llm_endpoints", action=_InOrder, metavar="NAME",
                   help="environment variable holding the key of the --llm-endpoint before it")
    p.set_defaults(func=dashboard_command)


def build_parser() -> argparse.ArgumentParser:
    """The top-level ``whylm`` parser with every subcommand.

    Returns:
        the parser (``dashboard``, ``explain``, ``signals``, ``fit-screen``, ``audit``, ``causal``).

    Examples:
        >>> sorted(build_parser()._subparsers._group_actions[0].choices)
        ['audit', 'causal', 'dashboard', 'explain', 'fit-screen', 'signals']
    """
    parser = argparse.ArgumentParser(
        prog="whylm",
        description="Explain what a language model did and why: token attribution, hallucination "
                    "signals, LLM-proposed causal graphs checked with DoWhy.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_dashboard_parser(sub)
    add_explain_parsers(sub)
    add_audit_parser(sub)
    add_causal_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``whylm`` console script; returns the exit status.

    Exit status: 0 success, 1 a negative verdict where the command has one (a rejected graph),
    2 bad input (a :class:`explain.WhylmError`: ``error: <one line>``), 3 an internal error (one line
    with the path of the log file holding the traceback), 130 interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        check_argv(argv)
    except WhylmError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        check_outputs(args)  # before any work: an unwritable --json/--html/--out is one line now
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

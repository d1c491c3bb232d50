"""The ``pyjobset`` command line: ``sim``, ``run``, ``up``, ``demo`` (forms fixed by docs/design/simulated-cluster.md),
and ``get`` / ``describe`` (docs/design/extensions.md; also the kubectl plugin ``kubectl-jobset``).

Role: parse flags, configure logging, turn SIGINT/SIGTERM into a graceful stop, and map start-up failures to a
one-line error and exit status 2 (bad usage or configuration) or 1 (runtime failure) — never a stack trace.
A usage error is one line too (``_Parser.error``: the message and where to read the flags); every subcommand's
``--help`` ends with an example.
``run`` accepts the reference controller's flags; a flag overrides the config file only when it is passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import logging
import signal
import sys
import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import structlog

from controller.settings import ConfigError, load_settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Options = TypeVar("_Options", bound="DataclassInstance")


def configure_logging(level: str = "info", *, json_logs: bool | None = None) -> None:
    """structlog with constant event names; JSON when not on a terminal (in the cluster), pretty otherwise."""
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    numeric = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
    lvl = numeric.get(level, logging.INFO)
    if level.isdigit():  # zap levels: higher is more verbose
        lvl = logging.DEBUG if int(level) >= 2 else logging.INFO
    renderer: Any = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _bool_flag(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def version() -> str:
    """The installed distribution's version; from a source checkout without metadata, ``pyproject.toml``'s."""
    try:
        return importlib.metadata.version("pyjobset")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as fh:
            return str(tomllib.load(fh)["project"]["version"]) + "+source"
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors that say where the fix is, instead of a usage block; descriptions and
    epilogs (the examples) are printed as written. Subcommand parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


EPILOGS = {
    "sim": """example:
  pyjobset sim --kubeconfig /tmp/sim.kubeconfig --nodes 64
  kubectl --kubeconfig /tmp/sim.kubeconfig apply -f deploy/crd/""",
    "run": """example (against a cluster started with 'pyjobset sim'):
  pyjobset run --kubeconfig /tmp/sim.kubeconfig --leader-elect=false --webhooks=false""",
    "up": """example:
  pyjobset up --kubeconfig /tmp/pyjobset.kubeconfig --pod-run-seconds 5
  export KUBECONFIG=/tmp/pyjobset.kubeconfig
  kubectl apply -f examples/pytorch-ddp.yaml && kubectl get jobsets -w""",
    "demo": """examples:
  pyjobset demo                                       # the 5-second tour: one JobSet, one restart
  pyjobset demo --nodes 1000 --gpus-per-node 8 --jobsets 4 --fail-at 20 --plot /tmp/demo.png""",
    "get": """example:
  pyjobset get -A --kubeconfig /tmp/pyjobset.kubeconfig      # or: kubectl jobset get -A""",
    "describe": """example:
  pyjobset describe pytorch-ddp -n default --kubeconfig /tmp/pyjobset.kubeconfig   # or: kubectl jobset describe""",
}

INSPECT_HELP: Final = {
    "get": "list JobSets: state, restarts, ready Jobs, age, latest failure",
    "describe": "show one JobSet: Jobs and pods, conditions, restart history, GPUs, placement, events",
}


def _add_inspect_flags(cmd: argparse.ArgumentParser, name: str) -> None:
    if name == "describe":
        cmd.add_argument("name", help="the JobSet's name")
    where = cmd.add_mutually_exclusive_group() if name == "get" else cmd
    where.add_argument("-n", "--namespace", default=None, help="namespace (default: the kubeconfig context's)")
    if name == "get":
        where.add_argument("-A", "--all-namespaces", action="store_true", help="JobSets of every namespace")
    cmd.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: $KUBECONFIG, else ~/.kube/config)")


def _command_parser(
    prog: str, description: str, example: str, commands: Iterable[str]
) -> tuple[argparse.ArgumentParser, Callable[[str, str], argparse.ArgumentParser]]:
    """``<prog> {commands}``: the parser, and how to add one of its subcommands — ``add(name, help_text)``, whose
    help opens with ``<prog> <name>: <help_text>.`` and ends with its example from :data:`EPILOGS` (written for
    ``pyjobset``, shown under ``prog``)."""
    parser = _Parser(prog=prog, description=description, epilog=f"example:\n  {example}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(commands) + "}")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = sub.add_parser(
            name,
            help=help_text,
            description=f"{prog} {name}: {help_text}.",
            epilog=EPILOGS[name].replace("pyjobset ", f"{prog} ", 1),
        )
        return cmd

    return parser, add


def build_kubectl_parser() -> argparse.ArgumentParser:
    """``kubectl jobset get|describe``: the same two commands as a kubectl plugin."""
    parser, add = _command_parser(
        "kubectl jobset",
        "JobSets at a glance (pyjobset's kubectl plugin).",
        "kubectl jobset get -A\n  kubectl jobset describe my-jobset -n team-a",
        INSPECT_HELP,
    )
    for name, help_text in INSPECT_HELP.items():
        _add_inspect_flags(add(name, help_text), name)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser, add = _command_parser(
        "pyjobset",
        "JobSet controller for Kubernetes, in Python.",
        "pyjobset up --kubeconfig /tmp/pyjobset.kubeconfig   # try your own JobSets",
        ("sim", "run", "up", "demo", *INSPECT_HELP),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")

    sim = add("sim", "start the simulated Kubernetes cluster on 127.0.0.1")
    sim.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig once the server serves")
    sim.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = any free port)")
    sim.add_argument("--nodes", type=int, default=16, help="number of simulated nodes")
    sim.add_argument("--gpus-per-node", type=int, default=8, help="nvidia.com/gpu allocatable per node")
    sim.add_argument("--nodes-per-pool", type=int, default=16, help="nodes per cloud.google.com/gke-nodepool")

    run = add("run", "run the controller against a cluster")
    run.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig path (default: $KUBECONFIG, else in-cluster configuration, else ~/.kube/config)",
    )
    run.add_argument("--config", default=None, help="Configuration file (config.jobset.x-k8s.io/v1alpha1)")
    run.add_argument("--metrics-bind-address", default=None, help='metrics address (default ":8443"; "0" disables)')
    run.add_argument("--health-probe-bind-address", default=None, help='probe address (default ":8081")')
    run.add_argument(
        "--metrics-secure",
        default=None,
        type=_bool_flag,
        help="serve metrics over HTTPS with authn/authz (default true); false: plain HTTP",
    )
    run.add_argument(
        "--leader-elect", nargs="?", const=True, default=None, type=_bool_flag, help="enable leader election"
    )
    run.add_argument("--kube-api-qps", type=float, default=None, help="client-side QPS (default 500)")
    run.add_argument("--kube-api-burst", type=int, default=None, help="client-side burst (default 500)")
    run.add_argument(
        "--webhooks",
        default=True,
        type=_bool_flag,
        help="serve the admission webhooks (default true; false when admission is served elsewhere or not at all)",
    )
    run.add_argument("--zap-log-level", default="info", help="log level: debug, info, warning, error or a number")
    run.add_argument("--zap-devel", nargs="?", const=True, default=None, type=_bool_flag, help=argparse.SUPPRESS)

    up = add("up", "simulated cluster + JobSet CRD + webhooks + controller, ready for kubectl")
    up.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig once everything is ready")
    up.add_argument("--nodes", type=int, default=16, help="number of simulated nodes (default 16)")
    up.add_argument("--gpus-per-node", type=int, default=8, help="nvidia.com/gpu allocatable per node (default 8)")
    up.add_argument("--nodes-per-pool", type=int, default=4, help="nodes per cloud.google.com/gke-nodepool (default 4)")
    up.add_argument("--port", type=int, default=0, help="API server port on 127.0.0.1 (default 0 = any free port)")
    up.add_argument(
        "--pod-run-seconds",
        type=float,
        default=None,
        help="pods with no sim.pyjobset.io/ annotation run this long, then succeed (default: until deleted)",
    )

    demo = add("demo", "simulated cluster + controller + sample JobSets in one process, watched live")
    demo.add_argument("--nodes", type=int, default=8, help="simulated nodes (default 8)")
    demo.add_argument("--gpus-per-node", type=int, default=8, help="nvidia.com/gpu allocatable per node (default 8)")
    demo.add_argument(
        "--jobsets",
        type=int,
        default=None,
        help="what-if fleet: this many JobSets competing for the nodes (default 3 once any fleet flag is given)",
    )
    demo.add_argument(
        "--jobset-size",
        type=int,
        default=None,
        help="fleet: one-pod Jobs per JobSet, each pod taking a whole node's GPUs (default: an even share of nodes)",
    )
    demo.add_argument(
        "--fail-at",
        type=float,
        default=None,
        metavar="SECONDS",
        help="fleet: this many seconds after the JobSets are created, fail the node under a running pod",
    )
    demo.add_argument(
        "--pod-run-seconds",
        type=float,
        default=None,
        help="seconds each simulated pod runs (default 2; fleet: 5, or --fail-at + 4)",
    )
    demo.add_argument("--plot", default=None, metavar="PATH", help="write a PNG timeline there (needs matplotlib)")
    demo.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")

    for name, help_text in INSPECT_HELP.items():
        _add_inspect_flags(add(name, help_text), name)
    return parser


FLAG_OVERRIDES: Final = {
    "metrics_bind_address": "metrics.bind_address",
    "metrics_secure": "metrics.secure",
    "health_probe_bind_address": "health.health_probe_bind_address",
    "leader_elect": "leader_election.leader_elect",
    "kube_api_qps": "client_connection.qps",
    "kube_api_burst": "client_connection.burst",
}
"""Flag (argparse destination) → the settings key it overrides when given (public: the configuration reference,
``tools/gendocs.py``, is generated from it)."""


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = {flag: getattr(args, flag) for flag in FLAG_OVERRIDES}
    return {FLAG_OVERRIDES[flag]: value for flag, value in given.items() if value is not None}


def _options_from_flags(cls: type[_Options], args: argparse.Namespace) -> _Options:
    """The options dataclass of a subcommand whose flags are named as its fields (``--gpus-per-node`` →
    ``gpus_per_node``): every field is taken from the parsed flags, so a field without a flag fails loudly here."""
    return cls(**{field.name: getattr(args, field.name) for field in dataclasses.fields(cls)})


async def _until_signalled(coro_factory: Any) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    result: int = await coro_factory(stop)
    return result


async def _cmd_run(args: argparse.Namespace) -> int:
    from cache.kubeconfig import KubeconfigError, load_cluster_config
    from controller.app import LeadershipLost, StartupError, preflight, run_controller

    settings = load_settings(args.config, overrides=_overrides(args))
    try:
        config = await load_cluster_config(args.kubeconfig)
    except KubeconfigError as err:
        print(f"pyjobset run: {err}", file=sys.stderr)
        return 2

    try:
        await preflight(config)
    except StartupError as err:
        print(f"pyjobset run: {err}", file=sys.stderr)
        return 1

    async def body(stop: asyncio.Event) -> int:
        try:
            await run_controller(settings, config, stop, webhooks=args.webhooks)
        except LeadershipLost as err:
            print(f"pyjobset run: {err}; exiting so a new process can campaign", file=sys.stderr)
            return 1
        return 0

    return await _until_signalled(body)


async def _cmd_sim(args: argparse.Namespace) -> int:
    import kubesim

    for flag in ("nodes", "gpus_per_node", "nodes_per_pool"):
        if getattr(args, flag) < 0:
            print(f"pyjobset sim: --{flag.replace('_', '-')} must be >= 0", file=sys.stderr)
            return 2
    await kubesim.serve(
        args.kubeconfig,
        port=args.port,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        nodes_per_pool=max(1, args.nodes_per_pool),
    )
    return 0


async def _cmd_up(args: argparse.Namespace) -> int:
    from cache.errors import ApiError
    from controller.up import UpError, UpOptions, run_up

    opts = _options_from_flags(UpOptions, args)

    async def body(stop: asyncio.Event) -> int:
        try:
            return await run_up(opts, stop, lambda line: print(line, flush=True))
        except UpError as err:
            print(f"pyjobset up: {err}", file=sys.stderr)
            return 2
        except (RuntimeError, ApiError) as err:
            print(f"pyjobset up: {err}", file=sys.stderr)
            return 1

    return await _until_signalled(body)


async def _cmd_demo(args: argparse.Namespace) -> int:
    from controller.demo import DemoOptions, check_options, run_demo

    options = _options_from_flags(DemoOptions, args)
    problems = check_options(options)
    if problems:
        for problem in problems:
            print(f"pyjobset demo: {problem}", file=sys.stderr)
        return 2
    return await _until_signalled(lambda stop: run_demo(stop, options))


async def _cmd_inspect(args: argparse.Namespace) -> int:
    from controller.inspect import run_inspect

    return await run_inspect(
        args.command,
        prog=args.prog,
        kubeconfig=args.kubeconfig,
        namespace=args.namespace,
        all_namespaces=getattr(args, "all_namespaces", False),
        name=getattr(args, "name", None),
    )


def kubectl_main(argv: Sequence[str] | None = None) -> int:
    """The ``kubectl-jobset`` console script (kubectl runs it for ``kubectl jobset ...``)."""
    return main(argv, parser=build_kubectl_parser(), prog="kubectl jobset")


def main(
    argv: Sequence[str] | None = None, *, parser: argparse.ArgumentParser | None = None, prog: str = "pyjobset"
) -> int:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    args.prog = f"{prog} {args.command}"
    configure_logging(getattr(args, "zap_log_level", "warning") if args.command == "run" else "warning")
    handlers = {
        "run": _cmd_run,
        "sim": _cmd_sim,
        "up": _cmd_up,
        "demo": _cmd_demo,
        "get": _cmd_inspect,
        "describe": _cmd_inspect,
    }
    try:
        return asyncio.run(handlers[args.command](args))
    except ConfigError as err:
        print(f"{args.prog}: configuration error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{args.prog}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

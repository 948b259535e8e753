"""The `spacehooks` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from .settings import ConfigError, Settings

__all__ = ["load_handlers", "main"]

log = logging.getLogger("spacehooks")


def load_handlers(extra: Sequence[str] = ()) -> list[str]:
    """Import every module of the `handlers` package, then each module named in `extra`.

    Importing is what registers: modules use `@on(...)` (the default router) or define a
    module-level `router = Router()`, which the app includes (see `collect_routers`).
    """
    names: list[str] = []
    try:
        package = importlib.import_module("handlers")
    except ModuleNotFoundError as exc:
        if exc.name != "handlers":
            raise
    else:
        for info in pkgutil.iter_modules(package.__path__, "handlers."):
            names.append(info.name)
    names.extend(extra)
    for name in names:
        importlib.import_module(name)
    return names


def collect_routers(module_names: Sequence[str]) -> list:
    """The default router plus every module-level `router` of the loaded modules."""
    from .routing import Router, default_router

    routers = [default_router]
    for name in module_names:
        candidate = getattr(sys.modules[name], "router", None)
        if isinstance(candidate, Router) and candidate is not default_router:
            routers.append(candidate)
    return routers


def build_server(
    settings: Settings, handler_modules: Sequence[str] = (), *, ui: bool = True
) -> object:
    from .app import WebhooksServer

    loaded = load_handlers(handler_modules)
    return WebhooksServer(
        ui=None if ui else False, settings=settings, routers=collect_routers(loaded)
    )


def _serve(args: argparse.Namespace) -> int:
    from .serving import serve

    settings = Settings.from_env()
    server = build_server(settings, args.handlers, ui=not args.no_ui)
    serve(server, host=args.host, port=args.port, share=args.share)  # type: ignore[arg-type]
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spacehooks",
        description="A durable webhook automation server for the Hugging Face Hub.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run the webhook server",
        description="Run the webhook server with every module of handlers/ loaded.",
    )
    serve.add_argument("--host", help="bind address (default 127.0.0.1, or 0.0.0.0 on a Space)")
    serve.add_argument("--port", type=int, help="port (default 7860)")
    serve.add_argument(
        "--handlers",
        action="append",
        default=[],
        metavar="MODULE",
        help="also load this module's handlers (repeatable)",
    )
    serve.add_argument(
        "--share", action="store_true", help="open a public tunnel for local debugging"
    )
    serve.add_argument(
        "--no-ui", action="store_true", help="serve webhooks and the API only, without Gradio"
    )
    serve.set_defaults(run=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"spacehooks: {exc}", file=sys.stderr)
        return 1
    except (ImportError, RuntimeError, ValueError, TypeError) as exc:
        if args.debug:
            raise
        print(f"spacehooks: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

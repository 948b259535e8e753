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
    settings: Settings,
    handler_modules: Sequence[str] = (),
    *,
    ui: bool = True,
    extra_routers: Sequence[object] = (),
) -> object:
    from .app import WebhooksServer

    loaded = load_handlers(handler_modules)
    return WebhooksServer(
        ui=None if ui else False,
        settings=settings,
        routers=[*collect_routers(loaded), *extra_routers],
    )


def _serve(args: argparse.Namespace) -> int:
    from .serving import configure_logging, serve

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    if settings.hf_token is not None:
        server = build_server(settings, args.handlers, ui=not args.no_ui)
        serve(server, host=args.host, port=args.port, share=args.share)  # type: ignore[arg-type]
        return 0
    # No token: the embedded sandbox Hub, so the whole loop can be tried without credentials.
    from .sandbox.embedded import EmbeddedSandbox, demo_router

    sandbox = EmbeddedSandbox(speed=settings.sandbox_speed, token=settings.sandbox_token)
    log.warning(
        "SANDBOX MODE: HF_TOKEN is not set, so the clients talk to the built-in sandbox Hub at "
        "%s (demo account 'demo', token %s), not to huggingface.co. Set HF_TOKEN to use the "
        "real Hub.",
        sandbox.url,
        sandbox.token,
    )
    server = build_server(
        sandbox.settings_for(settings),
        args.handlers,
        ui=not args.no_ui,
        extra_routers=[demo_router],
    )
    server.sandbox_url = sandbox.url  # type: ignore[attr-defined]

    def register(base_url: str) -> None:
        sandbox.register(base_url, server.router.paths(), settings.secret)  # type: ignore[attr-defined]

    try:
        serve(
            server,
            host=args.host,
            port=args.port,
            share=args.share,  # type: ignore[arg-type]
            on_ready=register,
        )
    finally:
        sandbox.close()
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    import uvicorn

    from .sandbox.app import PROVIDER_PATH, Sandbox
    from .serving import configure_logging

    configure_logging("INFO")
    box = Sandbox(args.speed, demo_token=args.token)
    box.base_url = f"http://127.0.0.1:{args.port}"
    print(
        f"spacehooks sandbox Hub on {box.base_url} (time x{args.speed:g})\n"
        f"  export HF_ENDPOINT={box.base_url}\n"
        f"  export HF_TOKEN={box.demo.token}\n"
        f"  instance provider: CORTECS_API_BASE_URL={box.base_url}{PROVIDER_PATH} "
        f"CORTECS_CLIENT_ID=demo-client CORTECS_CLIENT_SECRET=$HF_TOKEN\n"
        "  huggingface_hub users: set HF_HUB_DISABLE_XET=1 for large files (Xet is not "
        "simulated).",
        flush=True,
    )
    try:
        uvicorn.run(box.app, host=args.host, port=args.port, log_level="warning")
    finally:
        box.close()
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
    sandbox = sub.add_parser(
        "sandbox",
        help="run the sandbox Hub alone",
        description="Run the simulated Hub, Inference Endpoints API and instance provider, for "
        "any client (huggingface_hub's included) to use with HF_ENDPOINT.",
    )
    sandbox.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sandbox.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    sandbox.add_argument("--token", help="the demo account's token (default: generated, printed)")
    sandbox.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (default 1; tests use 1000)",
    )
    sandbox.set_defaults(run=_sandbox)
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

"""The `spacehooks` command."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .settings import ConfigError, Settings
from .workflows import UsageError

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
    from .serving import configure_logging

    if args.register and not args.share:
        raise UsageError(
            "--register WEBHOOK_ID needs --share (it points the webhook at the tunnel)."
        )
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    sandbox = None
    extra: list[object] = []
    if settings.hf_token is None:
        # No token: the embedded sandbox Hub, so the whole loop can be tried without credentials.
        from .sandbox.embedded import EmbeddedSandbox, demo_router

        sandbox = EmbeddedSandbox(speed=settings.sandbox_speed, token=settings.sandbox_token)
        log.warning(
            "SANDBOX MODE: HF_TOKEN is not set, so the clients talk to the built-in sandbox Hub "
            "at %s (demo account 'demo', token %s), not to huggingface.co. Set HF_TOKEN to use "
            "the real Hub.",
            sandbox.url,
            sandbox.token,
        )
        settings = sandbox.settings_for(settings)
        extra.append(demo_router)
    try:
        _serve_with(args, settings, sandbox, extra)
    finally:
        if sandbox is not None:
            sandbox.close()
    return 0


def _serve_with(
    args: argparse.Namespace, settings: Settings, sandbox: Any, extra: list[object]
) -> None:
    from .serving import serve
    from .workflows import TunnelRegistration

    server: Any = build_server(settings, args.handlers, ui=not args.no_ui, extra_routers=extra)
    tunnel_hook = (
        TunnelRegistration(server.hub, args.register, server.router.paths())
        if args.register
        else None
    )
    if sandbox is not None:
        server.sandbox_url = sandbox.url

    def ready(local: str, tunnel: str | None) -> None:
        if sandbox is not None:
            sandbox.register(local, server.router.paths(), settings.secret)
        if tunnel_hook is not None:
            tunnel_hook.point(tunnel)

    serve(
        server,
        host=args.host,
        port=args.port,
        share=args.share,
        on_ready=ready,
        on_stop=tunnel_hook.restore if tunnel_hook else None,
    )


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


def _hub() -> Any:
    from .client import HubClient

    return HubClient()


def _secret(given: str | None) -> str | None:
    return given or Settings.from_env().secret


def _register(args: argparse.Namespace) -> int:
    from .workflows import parse_watch, register

    watched = [parse_watch(spec) for spec in args.watch]
    webhook, created = register(_hub(), args.url, watched, args.domain, _secret(args.secret))
    print(f"{'Created' if created else 'Updated'} webhook {webhook.id} -> {webhook.url}")
    print(webhook.id)
    return 0


def _webhooks(args: argparse.Namespace) -> int:
    hub = _hub()
    if args.action == "list":
        for w in hub.list_webhooks():
            watched = ", ".join(f"{i.type}:{i.name}" for i in w.watched)
            state = "disabled" if w.disabled else "enabled"
            print(f"{w.id}  {state:8}  {w.url}  [{watched}] {','.join(w.domains)}")
        return 0
    if args.webhook_id is None:
        raise UsageError(
            f"webhooks {args.action} needs a WEBHOOK_ID (see: spacehooks webhooks list)."
        )
    if args.action == "delete":
        hub.delete_webhook(args.webhook_id)
        print(f"Deleted webhook {args.webhook_id}")
        return 0
    action = {
        "show": hub.get_webhook,
        "enable": hub.enable_webhook,
        "disable": hub.disable_webhook,
    }[args.action]
    w = action(args.webhook_id)
    print(
        json.dumps(
            {
                "id": w.id,
                "url": w.url,
                "disabled": w.disabled,
                "domains": w.domains,
                "watched": [{"type": i.type, "name": i.name} for i in w.watched],
                "secret": "set" if w.secret else None,
            },
            indent=2,
        )
    )
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from .workflows import deploy, parse_watch

    done = deploy(
        _hub(),
        args.space_id,
        hardware=args.hardware,
        private=args.private,
        storage=args.storage,
        sleep_time=args.sleep_time,
        secret=_secret(args.secret),
        watched=[parse_watch(spec) for spec in args.watch] or None,
        public_url=args.public_url,
        timeout=args.timeout,
    )
    if done.webhook is not None:
        print(f"Webhook {done.webhook.id} -> {done.webhook.url}")
    print(f"Console: {done.console_url}")
    return 0


def _send(args: argparse.Namespace) -> int:
    from .workflows import send

    status, body, delivery = send(
        args.url,
        event=args.event,
        payload_file=args.payload,
        secret=_secret(args.secret),
        sign=args.sign,
    )
    print(f"HTTP {status}")
    print(body)
    print(f"delivery id: {delivery or '(none: the delivery was not stored)'}")
    return 0 if status < 400 else 1


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
        "--register",
        metavar="WEBHOOK_ID",
        help="with --share: point this Hub webhook at the tunnel while serving, then restore it",
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

    register = sub.add_parser(
        "register",
        help="create or update the Hub webhook pointing at a URL",
        description="Create the webhook that points at URL, or update the one that already "
        "does (so running it twice makes one webhook). Prints the webhook's id.",
    )
    register.add_argument(
        "url", help="the webhook URL, e.g. https://me-hooks.hf.space/webhooks/hub"
    )
    register.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="KIND:NAME",
        help="user:NAME, org:NAME, model:NS/NAME, dataset:NS/NAME or space:NS/NAME (repeatable)",
    )
    register.add_argument(
        "--domain",
        action="append",
        default=[],
        choices=["repo", "discussion"],
        help="event domains (repeatable; default both)",
    )
    register.add_argument("--secret", help="the shared secret (default: WEBHOOK_SECRET)")
    register.set_defaults(run=_register)

    webhooks = sub.add_parser(
        "webhooks",
        help="list, show, enable, disable or delete webhooks",
        description="Manage your Hub webhooks.",
    )
    webhooks.add_argument("action", choices=["list", "show", "enable", "disable", "delete"])
    webhooks.add_argument("webhook_id", nargs="?", help="the webhook (not for list)")
    webhooks.set_defaults(run=_webhooks)

    deploy = sub.add_parser(
        "deploy",
        help="deploy this server as a Space",
        description="Create the Space if missing, upload space/, server/ and handlers/ in one "
        "commit (only what changed), set WEBHOOK_SECRET and HF_TOKEN, request the hardware, wait "
        "until it runs, and point a webhook at it.",
    )
    deploy.add_argument("space_id", help="user/name of the Space")
    deploy.add_argument("--hardware", default="cpu-basic", help="default cpu-basic")
    deploy.add_argument("--private", action="store_true", help="create the Space private")
    deploy.add_argument("--storage", help="persistent storage tier: small, medium or large")
    deploy.add_argument("--sleep-time", type=int, help="seconds idle before the Space sleeps")
    deploy.add_argument(
        "--secret",
        help="WEBHOOK_SECRET for the Space (default: the variable, else kept or generated)",
    )
    deploy.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="KIND:NAME",
        help="what the webhook watches (default: user:<the Space's owner>)",
    )
    deploy.add_argument(
        "--public-url", help="the Space's URL (default https://<subdomain>.hf.space)"
    )
    deploy.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds to wait for the Space to run (default 1800)",
    )
    deploy.set_defaults(run=_deploy)

    send = sub.add_parser(
        "send",
        help="send a test webhook to a URL",
        description="POST a realistic sample payload (or --payload FILE) as the Hub would, and "
        "print the status, the response and the delivery id.",
    )
    send.add_argument("url")
    send.add_argument(
        "--event",
        default="repo.content:update",
        help="scope:action of the sample (default repo.content:update)",
    )
    send.add_argument("--payload", type=Path, help="send this JSON file instead of a sample")
    send.add_argument("--secret", help="the shared secret (default: WEBHOOK_SECRET)")
    send.add_argument("--sign", action="store_true", help="also sign it (Standard Webhooks)")
    send.set_defaults(run=_send)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .client import HubError
    from .workflows import WorkflowError

    if args.command not in ("serve", "sandbox"):
        # Progress of long waits (deploy) reaches a log that is not a terminal, too.
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(f"spacehooks {args.command}: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, WorkflowError, HubError) as exc:
        if args.debug:
            raise
        print(f"spacehooks {args.command}: {exc}", file=sys.stderr)
        return 1
    except (ImportError, RuntimeError, ValueError, TypeError, OSError) as exc:
        if args.debug:
            raise
        print(f"spacehooks {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

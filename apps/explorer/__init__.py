"""The phase explorer: a Dash app that opens a probe dataset as a dynamical system to watch.

    from apps.explorer import create_app, serve
    app = create_app("probes/")                  # a probe file (.zarr / .nc) or a folder of them
    serve(app, host="127.0.0.1", port=8050)       # blocks; Ctrl-C stops

``fsnlab explore PROBE`` does the same from the command line (``docs/explorer.md``).

* :mod:`~apps.explorer.data`: which files may be read (path safety) and the dataset cache;
* :mod:`~apps.explorer.panels`: what each panel shows, as plain functions (figures from ``fsnlab.viz``);
* :mod:`~apps.explorer.layout`: the page; :mod:`~apps.explorer.callbacks`: the wiring;
* ``assets/explorer.js``: the animation, drawn in the browser; ``assets/explorer.css``: the style.
"""

from __future__ import annotations

import inspect
import socket
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any, Callable, TextIO

from apps.explorer.data import ExplorerError, PathRefused, ProbeCatalog
from apps.explorer.panels import Explorer

ASSETS = Path(__file__).resolve().parent / "assets"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

__all__ = ["ASSETS", "Explorer", "ExplorerError", "PathRefused", "ProbeCatalog", "create_app", "make_server", "serve"]


def create_app(target: Any) -> Any:
    """The Dash app for a probe file or folder. Raises :class:`ExplorerError` (one line) when there is
    nothing to show: a missing path, a file that is not a probe, a folder without probes."""
    import dash

    from apps.explorer.callbacks import register
    from apps.explorer.layout import build_layout

    explorer = target if isinstance(target, Explorer) else Explorer(target)
    good = explorer.check()
    options: dict[str, Any] = {}
    if "enable_mcp" in inspect.signature(dash.Dash.__init__).parameters:
        options["enable_mcp"] = False  # Dash 4's MCP endpoint (also switchable by environment variable): off
    app = dash.Dash(
        "fsnlab-explore",
        assets_folder=str(ASSETS),
        serve_locally=True,  # every script and style from this server: no CDN, works offline
        external_scripts=[],
        external_stylesheets=[],
        title="fsnlab explore",
        update_title=None,  # keep the tab title still while callbacks run
        compress=False,
        **options,
    )

    def layout() -> Any:  # re-evaluated on every page load: new probe files in the folder appear
        options = explorer.file_options()
        keys = [o["value"] for o in options]
        initial = good[0] if good and good[0] in keys else (keys[0] if keys else None)
        return build_layout(options, initial)

    app.layout = layout
    app.fsn_explorer = explorer
    app.fsn_callbacks = register(app, explorer)
    _install_host_check(app.server)
    return app


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def host_allowed(header: str | None, bound: tuple[str, int] | None) -> bool:
    """Whether a request's ``Host`` header names this server: localhost (127.0.0.1, localhost,
    [::1]) or the address it is bound to, with its port when a port is given. A server bound to all
    interfaces (0.0.0.0, ::) also answers to IP literals and this machine's own names. Anything
    else, e.g. a DNS-rebinding page's own domain, is refused (403)."""
    import ipaddress

    if not header:
        return False
    header = header.strip().lower()
    if header.startswith("["):
        name, _, rest = header[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    elif header.count(":") == 1:
        name, port_text = header.split(":")
    elif ":" in header:
        return False  # an unbracketed IPv6 literal is not a valid Host header
    else:
        name, port_text = header, ""
    if port_text is None or (port_text and not port_text.isdigit()):
        return False
    name = name.rstrip(".")
    bound_host, bound_port = bound if bound else ("127.0.0.1", 0)
    if port_text and bound_port and int(port_text) != bound_port:
        return False
    allowed = {"127.0.0.1", "localhost", "::1", bound_host.lower().strip("[]")}
    if bound_host in WILDCARD_HOSTS:
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
        allowed |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    return name in allowed


def _install_host_check(server: Any) -> None:
    """Serve only requests whose Host header names this server (against DNS rebinding)."""

    @server.before_request
    def _check_host() -> Any:
        from flask import request

        if not host_allowed(request.headers.get("Host"), server.config.get("FSN_BOUND")):
            return ("fsnlab explore: refused: the Host header does not name this server "
                    "(open it as http://127.0.0.1:PORT/ or the address given with --host)\n", 403,
                    {"Content-Type": "text/plain; charset=utf-8"})
        return None


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); :class:`ExplorerError` (one line) if that is impossible."""
    from werkzeug.serving import get_sockaddr, select_address_family

    try:
        family = select_address_family(host, port)
        address = get_sockaddr(host, int(port), family)
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:
        raise ExplorerError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "port in use" if getattr(exc, "errno", None) in (98, 48, 10048) else (exc.strerror or str(exc))
        raise ExplorerError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8050) -> Any:
    """A threaded werkzeug server for ``app`` bound to ``host:port`` (port 0: any free port); the
    socket is bound here so that a port in use is one clear error, not werkzeug's exit."""
    from werkzeug.serving import make_server as _make_server

    sock = _bind(host, port)
    server = _make_server(host, port, app.server, threaded=True, fd=sock.fileno())
    app.server.config["FSN_BOUND"] = (host, int(server.port))  # what the Host check accepts
    server.fsn_socket = sock  # keep the original open for the server's lifetime
    return server


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8050,
    open_browser: bool = False,
    out: TextIO | None = None,
    ready: Callable[[Any], None] | None = None,
) -> None:
    """Serve ``app`` until interrupted (Ctrl-C) or ``server.shutdown()``. Never in debug mode."""
    import logging

    out = out or sys.stdout
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request (the animation is local, but clicks are not)
    server = make_server(app, host, port)
    url = url_of(host, server.port)
    print(f"fsnlab explore: serving on {url} (Ctrl-C to stop)", file=out, flush=True)
    if host not in LOCAL_HOSTS:
        print(f"fsnlab explore: warning: listening on {host}: anyone who can reach this machine can read the probes being explored",
              file=sys.stderr, flush=True)
    if ready is not None:
        ready(server)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.fsn_socket.close()

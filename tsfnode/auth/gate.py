"""One gate per sub-application: who may come in, decided in one middleware per trust
boundary, with what is open listed where it can be read.

Every route of a sub-application is one of:

- **public**: answers anyone (the sign-in page, the node's own page, the speed test);
- **signed**: answers anyone at the HTTP level because what it carries is checked against a
  signature before it is parsed (peer envelopes, chunks against a signed manifest, signed
  mail polls and receipts): the handler is the gate;
- **local**: for the operator, from the node's own machine only (a loopback address);
- anything else: **authenticated** by the sub-application's ``authenticate`` (a web session,
  a bearer token), whose answer is kept on the request (``principal``) for the handler.

A route nobody classified is authenticated, never open; a sub-application that has no way
to authenticate must classify every route, and refuses to start otherwise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Authenticate = Callable[[web.Request], Awaitable[object]]

PRINCIPAL = web.RequestKey("principal", object)  # what ``authenticate`` answered


@dataclass(frozen=True)
class Gate:
    """The rules of one sub-application's gate (see the module's docstring)."""

    public: frozenset[Any] = field(default_factory=frozenset)
    signed: frozenset[Any] = field(default_factory=frozenset)
    local: frozenset[Any] = field(default_factory=frozenset)
    authenticate: Authenticate | None = None

    @staticmethod
    def of(
        *,
        public: Iterable[Any] = (),
        signed: Iterable[Any] = (),
        local: Iterable[Any] = (),
        authenticate: Authenticate | None = None,
    ) -> Gate:
        return Gate(frozenset(public), frozenset(signed), frozenset(local), authenticate)

    def kind_of(self, handler: Any, resource: Any) -> str:
        """``public``, ``signed``, ``local`` or ``authenticated``."""
        if isinstance(resource, web.StaticResource) or handler in self.public:
            return "public"
        if handler in self.signed:
            return "signed"
        if handler in self.local:
            return "local"
        return "authenticated"

    def install(self, app: web.Application) -> None:
        """Put the gate first among ``app``'s middlewares, and check at start that every
        route is classified when the sub-application cannot authenticate."""
        app.middlewares.insert(0, self._middleware(app))
        if self.authenticate is None:
            app.on_startup.append(self._check_routes)

    async def _check_routes(self, app: web.Application) -> None:
        for resource in app.router.resources():
            if isinstance(resource, web.PrefixedSubAppResource):
                continue  # a sub-application has its own gate
            for route in resource:
                if self.kind_of(route.handler, resource) != "authenticated":
                    continue
                raise RuntimeError(
                    f"route {route.method} {resource.canonical} is not classified by the gate"
                )

    def _middleware(self, owner: web.Application) -> Any:
        gate = self

        @web.middleware
        async def gate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            match = request.match_info
            if match.http_exception is not None or match.apps[-1] is not owner:
                return await handler(request)  # no such route, or a sub-application's own
            kind = gate.kind_of(match.handler, match.route.resource)
            if kind == "local" and not from_this_machine(request):
                raise web.HTTPForbidden(
                    text="403: for the node's operator, from the node's own machine only"
                    " / réservé à l'opérateur, depuis la machine du nœud"
                )
            if kind == "authenticated":
                if gate.authenticate is None:  # cannot happen once started
                    raise web.HTTPForbidden(text="403")
                request[PRINCIPAL] = await gate.authenticate(request)
            return await handler(request)

        return gate_middleware


def from_this_machine(request: web.Request) -> bool:
    """Whether a request came from the node's own machine: a loopback address, or the
    very address it reached (the CLI calling the node on its LAN address)."""
    if is_loopback(request.remote):
        return True
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return sockname is not None and request.remote == sockname[0]


def is_loopback(remote: str | None) -> bool:
    """Whether a request came from this machine (127.0.0.0/8 or ::1)."""
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False

"""Name servers given on the command line (HOST[:PORT]) and resolvers that ask them."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import dns.flags
import dns.resolver

from mailappliance.errors import UserError
from mailappliance.site import is_host_address

DNS_PORT = 53
# Seconds for one answer, and for a whole lookup with retries; a check asks a few hundred questions.
QUERY_TIMEOUT = 2.0
LOOKUP_LIFETIME = 5.0


@dataclass(frozen=True)
class Server:
    address: str
    port: int = DNS_PORT

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def parse_server(value: str, option: str, names_allowed: bool = True) -> Server:
    """HOST, HOST:PORT, IPv6 or [IPv6]:PORT; host names are looked up with the system resolver."""
    example = "192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53"
    fix = f"give {'a host name or ' if names_allowed else ''}an IP address and optionally a port, e.g. {example}"
    text = value.strip()
    port_text = ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise UserError(f"{option}: {value!r} is not HOST[:PORT]; {fix}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    port = DNS_PORT
    if port_text or text.endswith(":"):
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise UserError(f"{option}: {value!r} has no valid port; {fix}")
        port = int(port_text)
    try:
        return Server(str(ipaddress.ip_address(host)), port)
    except ValueError:
        pass
    if not names_allowed or not host or not is_host_address(host):
        raise UserError(f"{option}: {value!r} is not {'a host or ' if names_allowed else ''}an IP address; {fix}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UserError(f"{option}: cannot resolve {host!r} ({exc.strerror}); give its IP address instead") from None
    return Server(str(infos[0][4][0]), port)


def resolver_for(server: Server | None) -> dns.resolver.Resolver:
    """A resolver asking `server`, or the system's resolvers from /etc/resolv.conf when None.

    Queries set DO and AD so a validating resolver reports whether it validated the answer (RFC 6840 5.7).
    """
    if server is None:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise UserError("no system resolver configured (/etc/resolv.conf); give one with "
                            "--nameserver IP[:PORT]") from None
    else:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [server.address]
        resolver.port = server.port
    resolver.timeout = QUERY_TIMEOUT
    resolver.lifetime = LOOKUP_LIFETIME
    resolver.flags = dns.flags.RD | dns.flags.AD
    resolver.use_edns(0, dns.flags.DO, 1232)
    return resolver


def describe(server: Server | None, resolver: dns.resolver.Resolver) -> str:
    """Which server answered, for reports: the one given, or the system resolver's addresses."""
    if server is not None:
        return str(server)
    return f"the system resolver ({', '.join(str(ns) for ns in resolver.nameservers)})"

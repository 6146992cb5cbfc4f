"""Checks of the hosted addresses: mailboxes, aliases (no target in a hosted domain that leads nowhere, no
alias loops) and the admin contact."""

from __future__ import annotations

from collections import deque
from typing import Any

from mailappliance.site.checks.base import Checker, join
from mailappliance.site.model import DEFAULT_QUOTA, IMPLICIT_LOCAL_PARTS, QUOTA_RANGE, Alias, Mailbox
from mailappliance.site.values import (
    MAX_ADDRESS_LENGTH,
    MAX_DISPLAY_NAME_LENGTH,
    is_domain_name,
    is_email_address,
    show_value,
    size_to_bytes,
)

# Loops are reported one line each, up to this many; the rest show after those are fixed.
MAX_LOOPS_REPORTED = 20

# Each alias's field path and its valid targets with theirs, by address: what the loop check follows.
AliasEntries = dict[str, tuple[str, list[tuple[str, str]]]]


def check_admin_contact(checker: Checker, top: dict[str, Any], domains: list[str], mailboxes: list[Mailbox],
                        aliases: list[Alias]) -> str | None:
    fix = "use an email address such as postmaster@example.com"
    value = checker.text(top, "admin_contact", "", True, fix, MAX_ADDRESS_LENGTH)
    if value is None:
        return None
    address = value.lower()
    if not is_email_address(address):
        checker.error("admin_contact", f"{show_value(value)} is not a valid email address", fix)
        return None
    domain = address.rpartition("@")[2]
    # postmaster@ and abuse@ are delivered to admin_contact, so a hosted admin_contact needs a real
    # destination of its own or those messages would loop.
    if domain in domains and not is_defined(address, receiving_addresses(mailboxes, aliases), implicit=False):
        checker.error("admin_contact",
                      f"{show_value(value)} is in a declared domain but is neither a mailbox nor an alias",
                      "add it to mailboxes or use an address outside the site's domains")
    return address


def _hosted_address(checker: Checker, data: dict[str, Any], path: str, domains: list[str], catch_all: bool,
                    fix: str) -> str | None:
    value = checker.text(data, "address", path, True, fix, MAX_ADDRESS_LENGTH)
    if value is None:
        return None
    address = value.lower()
    where = join(path, "address")
    if catch_all and address.startswith("@"):
        valid = is_domain_name(address[1:])
    else:
        valid = is_email_address(address, hosted=True)
    if not valid:
        allowed = ("use local-part@domain with letters, digits, dots, hyphens and underscores before the @"
                   + (", or @domain for a catch-all" if catch_all else ""))
        checker.error(where, f"{show_value(value)} is not a valid {'alias' if catch_all else 'mailbox'} address",
                      allowed)
        return None
    domain = address.rpartition("@")[2]
    if domain not in domains:
        declared = ", ".join(domains) if domains else "none yet"
        checker.error(where, f"{show_value(value)} is not in a declared domain",
                      f"add {domain} to domains or use one of the declared domains ({declared})")
        return None
    return address


def check_mailboxes(checker: Checker, top: dict[str, Any], domains: list[str]) -> list[Mailbox]:
    items = checker.items(top, "mailboxes", "", False,
                          "list mailboxes, e.g. mailboxes: [{address: alice@example.com}]")
    result: list[Mailbox] = []
    first_seen: dict[str, str] = {}
    for index, item in enumerate(items or []):
        path = join("mailboxes", index)
        data = checker.mapping(item, path, ("address", "quota", "name"), "- address: alice@example.com")
        if data is None:
            continue
        address = _hosted_address(checker, data, path, domains, False,
                                  "give the mailbox address, e.g. alice@example.com")
        quota = checker.size(data, "quota", path, DEFAULT_QUOTA, QUOTA_RANGE)
        name = _display_name(checker, data, path)
        if address is not None and address in first_seen:
            checker.error(join(path, "address"),
                          f"{show_value(address)} is already declared at {first_seen[address]}",
                          "list each mailbox once")
            continue
        if address is not None:
            first_seen[address] = path
        if address is not None:
            # Kept even when quota or name are wrong, so later checks know the address exists; the
            # recorded error stops the load before this placeholder could be used.
            quota = quota or (DEFAULT_QUOTA, size_to_bytes(DEFAULT_QUOTA))
            result.append(Mailbox(address=address, quota=quota[0], quota_bytes=quota[1], name=name or ""))
    return result


def _display_name(checker: Checker, data: dict[str, Any], path: str) -> str | None:
    value = data.get("name")
    if value is None:
        return ""
    where = join(path, "name")
    fix = "write the person's name as plain text without : or line breaks, e.g. name: Alice Example"
    name = checker.string(value, where, fix, MAX_DISPLAY_NAME_LENGTH)
    if name is None:
        return None
    # The name ends up in colon-separated passwd-file records.
    if ":" in name:
        checker.error(where, f"{show_value(value)} contains a colon", fix)
        return None
    return name


def check_aliases(checker: Checker, top: dict[str, Any], domains: list[str],
                  mailboxes: list[Mailbox]) -> tuple[list[Alias], AliasEntries]:
    """The aliases, and their entries for `check_alias_loops`."""
    items = checker.items(top, "aliases", "", False,
                          "list aliases, e.g. aliases: [{address: sales@example.com, to: [alice@example.com]}]")
    mailbox_addresses = {m.address for m in mailboxes}
    result: list[Alias] = []
    entries: AliasEntries = {}
    first_seen: dict[str, str] = {}
    hosted_targets: list[tuple[str, str]] = []
    example = "- {address: sales@example.com, to: [alice@example.com]}"
    for index, item in enumerate(items or []):
        path = join("aliases", index)
        data = checker.mapping(item, path, ("address", "to"), example)
        if data is None:
            continue
        address = _hosted_address(checker, data, path, domains, True,
                                  "give the alias address, e.g. sales@example.com or @example.com")
        where = join(path, "address")
        duplicate = address is not None and address in first_seen
        if duplicate:
            checker.error(where, f"{show_value(address)} is already declared at {first_seen[address]}",
                          "list each alias once and put all its targets in its to: list")
        elif address in mailbox_addresses:
            checker.error(where, f"{show_value(address)} is also a mailbox",
                          "remove the alias or the mailbox (a mailbox already receives its own mail)")
        targets = _targets(checker, data, path)
        hosted_targets += [(where, target) for where, target in targets if target.rpartition("@")[2] in domains]
        if address is None or duplicate:
            continue
        first_seen[address] = path
        entries[address] = (path, targets)
        # Kept with invalid targets dropped, so mail addressed to it still counts as defined below.
        result.append(Alias(address=address, to=tuple(target for _, target in targets)))
    # Targets in a hosted domain must lead somewhere, otherwise the alias accepts mail it then bounces.
    destinations = receiving_addresses(mailboxes, result)
    for where, target in hosted_targets:
        if not is_defined(target, destinations, implicit=True):
            checker.error(where,
                          f"{show_value(target)} is in a declared domain but is neither a mailbox nor an alias",
                          "add that mailbox or alias, or fix the address")
    return result, entries


def _targets(checker: Checker, data: dict[str, Any], path: str) -> list[tuple[str, str]]:
    """The valid targets of an alias, each with its field path."""
    fix = "list one or more addresses to deliver to, e.g. to: [alice@example.com]"
    address_fix = "use local-part@domain, e.g. alice@example.com"
    result: list[tuple[str, str]] = []
    for index, value in enumerate(checker.items(data, "to", path, True, fix) or []):
        where = join(join(path, "to"), index)
        text = checker.string(value, where, address_fix, MAX_ADDRESS_LENGTH, "an email address")
        if text is None:
            continue
        if not is_email_address(text.lower()):
            checker.error(where, f"{show_value(value)} is not a valid email address", address_fix)
            continue
        result.append((where, text.lower()))
    return result


def check_alias_loops(checker: Checker, entries: AliasEntries, domains: list[str], mailboxes: list[Mailbox],
                      admin_contact: str | None) -> None:
    """Report every alias that leads back to itself: Postfix expands a → b → a to nothing deliverable."""
    graph = _AliasGraph(entries, domains, {m.address for m in mailboxes}, admin_contact)
    fix = "make one of them deliver to a mailbox or an outside address"
    loops = graph.loops(MAX_LOOPS_REPORTED + 1)
    for where, chain in loops[:MAX_LOOPS_REPORTED]:
        checker.error(where, f"alias loop {chain}", fix)
    if len(loops) > MAX_LOOPS_REPORTED:
        checker.error("aliases", f"more alias loops than the {MAX_LOOPS_REPORTED} shown",
                      "fix those and validate again")


class _AliasGraph:
    """Where mail to each hosted alias goes, as Postfix's virtual alias expansion follows it.

    Nodes are the explicit aliases (catch-alls included) and the implicit postmaster@/abuse@ of each domain
    (which go to admin_contact). A target leaves the graph when it is a mailbox or outside the site's
    domains; otherwise it is its own explicit alias, the implicit address, or the domain's catch-all.
    """

    def __init__(self, entries: AliasEntries, domains: list[str], mailboxes: set[str],
                 admin_contact: str | None) -> None:
        self.domains = set(domains)
        self.mailboxes = mailboxes
        self.entries = entries
        # node -> [(target as written, field path of the target, next node)]
        self.edges: dict[str, list[tuple[str, str, str]]] = {}
        self.order: dict[str, int] = {}
        for address, (_, targets) in entries.items():
            self.order[address] = len(self.order)
            self.edges[address] = [(t, where, node) for where, t in targets if (node := self.node_of(t))]
        for node in [n for edges in list(self.edges.values()) for _, _, n in edges if n not in self.edges]:
            # Implicit addresses: only reachable as targets, and only admin_contact follows them.
            self.order.setdefault(node, len(self.order))
            follow = self.node_of(admin_contact) if admin_contact else None
            self.edges[node] = [(admin_contact, "admin_contact", follow)] if follow in entries else []

    def node_of(self, address: str) -> str | None:
        local, _, domain = address.rpartition("@")
        if domain not in self.domains or address in self.mailboxes:
            return None
        if address in self.entries:
            return address
        if local in IMPLICIT_LOCAL_PARTS:
            return address
        catch_all = f"@{domain}"
        return catch_all if catch_all in self.entries else None

    def loops(self, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` loops as (field path, "a → b → a"), each through an edge no earlier loop used, so a
        ring of thousands of aliases costs one search."""
        cyclic = self.cyclic_nodes()
        used: set[tuple[str, int]] = set()
        found: list[tuple[str, str]] = []
        for start in sorted(cyclic, key=self.order.__getitem__):
            for index, (_, _, first) in enumerate(self.edges[start]):
                if (start, index) in used or first not in cyclic:
                    continue
                path = self.shortest_path(first, start, cyclic)
                if path is None:
                    continue
                hops = [(start, index)] + path
                used.update(hops)
                # Told from the loop's first alias in the file, and placed at the target that closes it.
                first_hop = min(range(len(hops)), key=lambda n: self.order[hops[n][0]])
                hops = hops[first_hop:] + hops[:first_hop]
                found.append((self.edges[hops[-1][0]][hops[-1][1]][1], self.describe(hops)))
                if len(found) == limit:
                    return found
        return found

    def cyclic_nodes(self) -> set[str]:
        """Nodes on some cycle: those in a strongly connected component of two or more, or with a self-edge."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        result: set[str] = set()
        for root in self.edges:
            if root in index:
                continue
            # Tarjan's algorithm without recursion: a site may hold thousands of aliases.
            work: list[tuple[str, int]] = [(root, 0)]
            while work:
                node, position = work.pop()
                if position == 0:
                    index[node] = low[node] = len(index)
                    stack.append(node)
                    on_stack.add(node)
                edges = self.edges[node]
                if position > 0:
                    child = edges[position - 1][2]
                    low[node] = min(low[node], low[child])
                while position < len(edges):
                    child = edges[position][2]
                    position += 1
                    if child not in index:
                        work.append((node, position))
                        work.append((child, 0))
                        break
                    if child in on_stack:
                        low[node] = min(low[node], index[child])
                else:
                    if low[node] == index[node]:
                        component = []
                        while True:
                            member = stack.pop()
                            on_stack.discard(member)
                            component.append(member)
                            if member == node:
                                break
                        if len(component) > 1 or any(n == node for _, _, n in edges):
                            result.update(component)
        return result

    def shortest_path(self, source: str, target: str, allowed: set[str]) -> list[tuple[str, int]] | None:
        """The edges (node, edge index) of a shortest walk from `source` to `target` inside `allowed`."""
        if source == target:
            return []
        previous: dict[str, tuple[str, int]] = {}
        queue = deque([source])
        seen = {source}
        while queue:
            node = queue.popleft()
            for number, (_, _, child) in enumerate(self.edges[node]):
                if child in seen or child not in allowed:
                    continue
                previous[child] = (node, number)
                if child == target:
                    path = []
                    while child != source:
                        path.append(previous[child])
                        child = previous[child][0]
                    return path[::-1]
                seen.add(child)
                queue.append(child)
        return None

    def describe(self, hops: list[tuple[str, int]]) -> str:
        shown = [hops[0][0]]
        for node, number in hops:
            written, _, reached = self.edges[node][number]
            shown.append(written if written == reached else f"{written} (caught by {reached})")
        if len(shown) > 6:
            shown = shown[:3] + [f"… {len(shown) - 5} more …"] + shown[-2:]
        return " → ".join(shown)


def receiving_addresses(mailboxes: list[Mailbox], aliases: list[Alias]) -> set[str]:
    """The hosted addresses that take mail: mailboxes, aliases and catch-alls (@domain)."""
    return {m.address for m in mailboxes} | {a.address for a in aliases}


def is_defined(address: str, destinations: set[str], implicit: bool) -> bool:
    """Whether mail to a hosted address has a destination (a mailbox, an alias or a catch-all)."""
    local, _, domain = address.rpartition("@")
    if implicit and local in IMPLICIT_LOCAL_PARTS:
        return True
    return address in destinations or f"@{domain}" in destinations

"""throttle_circumvention: linked developer accounts sharing one seller's quota.

Three steps. ``Links`` (state key ``L|address``) sees every call by source address and
forwards it with the accounts it links to. ``AgentLinks`` (state key ``G|user agent``)
does the same by user agent when ``link_fields`` lists it, forwarding links only.
``SharedQuota`` (state key ``T|region|seller|operation``) keeps those links, finds the
calling account's group and runs the group's calls through one token bucket.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from aupwatch.detectors.declare import SEP, Detector, Reason, Severity, Step
from aupwatch.detectors.item import (
    C_DEV,
    C_OP,
    C_REGION,
    C_SELLER,
    EVENT_ID,
    KEY,
    ORIGIN,
    PAYLOAD,
    TS,
)
from aupwatch.detectors.link_ignore import LinkIgnore
from aupwatch.detectors.occurrence import Emitter
from aupwatch.detectors.steps import States, apply_by_step, step_by_apply
from aupwatch.schemas.times import US_PER_S

if TYPE_CHECKING:
    from aupwatch.detectors.config import DetectorConfig
    from aupwatch.detectors.engine import Item, Output, State

NAME = "throttle_circumvention"
# rank of link-only forwards: before the calls of the same instant, which they may link
_LINK_RANK = 1


class Links:
    """Links accounts that call from one address within ``link_horizon``.

    Args:
        config: Gives ``link_horizon``, ``link_fields`` and the ignored addresses.
    """

    prefix = "L"

    def __init__(self, config: DetectorConfig) -> None:
        self.horizon = config.link_horizon
        self.linking = "source_ip" in config.link_fields
        self.ignored = LinkIgnore(config)
        self.ignoring = bool(self.ignored)
        # read per call: the usual case (linking by address, nothing ignored) in one test
        self.plain = self.linking and not self.ignoring

    def step(self, key: str, states: States, item: Item, out: Output) -> int | None:
        """Forwards the call to its scope with the accounts it links to (``detectors.steps``)."""
        # unpacked whole: one step for a tuple, where each subscript is one of its own
        ts, rank, eid, _, call, origin = item
        _, developer, _, operation, status, address, seller, region = call
        if not self.plain and (not self.linking or (self.ignoring and self.ignored(address))):
            # links no one, but the call still counts in the bucket of a group linked otherwise
            scope = f"T{SEP}{region}{SEP}{seller}{SEP}{operation}"
            out.forwards.append((ts, rank, eid, scope, (developer, status, "", ()), origin))
            return None
        state = states.get(key)
        due = None  # the timer of a new address; an address's later calls leave it
        if state is None:
            due = ts + self.horizon + 1
            state = states[key] = {"devs": {}, "_t": due}
        devs: dict[str, int] = state["devs"]
        last = devs.get(developer)
        links: list[str] | tuple[()]
        if len(devs) == (0 if last is None else 1):
            links = ()  # the usual case: no other account called from this address
        else:
            since = ts - self.horizon
            links = [d for d, t in devs.items() if t >= since and d != developer]
            links.sort()
        if last is None or ts > last:
            devs[developer] = ts
        if not links:
            # the usual forward, most of which change nothing: the item itself stands for
            # it (``solo_forward`` builds it), and a caller that drops it builds nothing
            out.forwards.append(item)
            return due
        scope = f"T{SEP}{region}{SEP}{seller}{SEP}{operation}"
        out.forwards.append((ts, rank, eid, scope, (developer, status, address, links), origin))
        return due

    apply = apply_by_step

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Forgets accounts not seen within the horizon; drops the key when none is left."""
        since = due - self.horizon - 1
        devs = {d: last for d, last in state["devs"].items() if last > since}
        if not devs:
            return None
        state["devs"] = devs
        state["_t"] = max(devs.values()) + self.horizon + 1
        return state


def is_solo(forward: Item) -> bool:
    """Whether a forward is a call's own detect item (see ``solo_forward``)."""
    return type(forward[KEY]) is list


def solo_forward(item: Item) -> Item:
    """The forward a detect item stands for: its call, without links, from its address.

    ``Links`` hands on the item of a call that links no one as it is; where the forward
    goes on (a worker's throttle topic, or a live scope offline) this builds it.
    """
    ts, rank, eid, _, call, origin = item
    _, developer, _, operation, status, address, seller, region = call
    scope = f"T{SEP}{region}{SEP}{seller}{SEP}{operation}"
    return (ts, rank, eid, scope, (developer, status, address, ()), origin)


def scope_of(call: tuple[Any, ...]) -> str:
    """The ``SharedQuota`` key of a call's packed record (``aupwatch.detectors.item``)."""
    return f"T{SEP}{call[C_REGION]}{SEP}{call[C_SELLER]}{SEP}{call[C_OP]}"


def scope_seller(scope: str) -> str:
    """The seller of a ``SharedQuota`` key ``T|region|seller|operation``."""
    return scope.split(SEP, 3)[2]


class AgentLinks(Links):
    """Links accounts that call with one user agent within ``link_horizon``.

    Only when ``link_fields`` lists ``user_agent``. Forwards links only (the call itself is
    charged by ``Links``), ahead of the calls of the same instant.

    Args:
        config: Gives ``link_horizon``, ``link_fields`` and ``link_ignore_values``.
    """

    prefix = "G"
    step = step_by_apply  # not Links.step: its own apply

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        self.linking = "user_agent" in config.link_fields

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Forwards the accounts this call's user agent links to its scope (if any)."""
        if not self.linking:
            return state
        agent = key[2:]
        if agent in self.ignored.values:
            return state
        ts = item[TS]
        call = item[PAYLOAD]
        developer, region, seller = call[C_DEV], call[C_REGION], call[C_SELLER]
        operation = call[C_OP]
        if state is None:
            state = {"devs": {}, "_t": ts + self.horizon + 1}
        devs: dict[str, int] = state["devs"]
        last = devs.get(developer)
        if last is None or ts > last:
            devs[developer] = ts
        since = ts - self.horizon
        links = sorted(d for d, t in devs.items() if t >= since and d != developer)
        if links:
            scope = f"T{SEP}{region}{SEP}{seller}{SEP}{operation}"
            out.forwards.append(
                (
                    ts,
                    _LINK_RANK,
                    f"{item[EVENT_ID]}{SEP}ua",
                    scope,
                    (developer, None, agent, links),
                    item[ORIGIN],
                )
            )
        return state


class SharedQuota:
    """Runs the calls of each linked group of accounts through one shared bucket.

    Args:
        config: Gives plans, ``link_horizon``, ``throttle_window``, ``min_excess_calls``.
    """

    prefix = "T"

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.horizon = config.link_horizon
        self.window = config.throttle_window
        self.min_excess = config.min_excess_calls
        self.keep = max(self.horizon, self.window)
        self.occur = Emitter(config, NAME)

    def apply(self, key: str, state: State | None, item: Item, out: Output) -> State | None:
        """Adds the call's links, then charges the call to its group's bucket."""
        ts = item[TS]
        developer, status, address, links = item[PAYLOAD]
        if state is None:
            if not links:
                # no link known in this scope: no group can form. Only a call with links
                # creates state, which pipeline._live_forwards relies on
                return None
            state = {"edges": {}, "groups": {}, "_t": ts + self.keep + 1}
        edges: dict[str, int] = state["edges"]
        for other in links:
            edges[_pair(developer, other)] = ts
        if status is None:
            # links by user agent only: remembered for the evidence, nothing charged
            agents: dict[str, int] = state.setdefault("ua", {})
            agents[address] = ts
            return state
        group = self._group(edges, developer, ts - self.horizon)
        if len(group) < 2:
            return state
        _, region, seller, operation = key.split(SEP)
        plan = self.config.plan_for(operation)
        gkey = SEP.join(group)
        groups: dict[str, Any] = state["groups"]
        g = groups.get(gkey)
        if g is None:
            g = {
                "tokens": self._start_tokens(groups, set(group), ts, plan.rate, plan.burst),
                "at": ts,
                "calls": [],
                "excess": [],
                "addr": {},
            }
            groups[gkey] = g
        else:
            g["tokens"] = min(plan.burst, g["tokens"] + plan.rate * (ts - g["at"]) / US_PER_S)
            g["at"] = ts
        since = ts - self.window
        g["calls"] = [c for c in g["calls"] if c[0] > since]
        g["calls"].append([ts, developer])
        if links:
            g["addr"][address] = ts
        if status == 429:
            return state
        if g["tokens"] >= 1:
            g["tokens"] -= 1
            return state
        g["excess"] = [t for t in g["excess"] if t > since]
        g["excess"].append(ts)
        if len(g["excess"]) >= self.min_excess:
            self.occur(
                out,
                item,
                "shared_quota",
                {
                    "region": region,
                    "seller_id": seller,
                    "operation": operation,
                    "developer_ids": list(group),
                },
                oid=item[EVENT_ID],
                first_seen=g["excess"][0],
                evidence={
                    "calls_per_account": dict(sorted(Counter(d for _, d in g["calls"]).items())),
                    "excess_calls": len(g["excess"]),
                    "plan": {"rate": plan.rate, "burst": plan.burst},
                    "shared_addresses": sorted(g["addr"])[: self.config.sample_size],
                    **self._agents(state, ts),
                },
            )
        return state

    def fire(self, key: str, state: State, due: int, out: Output) -> State | None:
        """Drops expired links, full buckets and old calls; the key when nothing is left."""
        now = due - 1
        plan = self.config.plan_for(key.rsplit(SEP, 1)[1])
        state["edges"] = {p: t for p, t in state["edges"].items() if t >= now - self.horizon}
        if "ua" in state:
            agents = {a: t for a, t in state["ua"].items() if t >= now - self.horizon}
            if agents:
                state["ua"] = agents
            else:
                del state["ua"]
        groups = {}
        for gkey, g in state["groups"].items():
            refilled = g["tokens"] + plan.rate * (now - g["at"]) / US_PER_S
            # a bucket that has refilled is the same as a new one: nothing to keep
            if refilled < plan.burst or any(t > now - self.window for t in g["excess"]):
                groups[gkey] = g
        state["groups"] = groups
        if not state["edges"] and not groups:
            return None
        latest = max([*state["edges"].values(), *(g["at"] for g in groups.values())])
        state["_t"] = max(latest + self.keep + 1, due + 1)
        return state

    def _agents(self, state: State, ts: int) -> dict[str, list[str]]:
        """The user agents that linked accounts of this scope (only when any did)."""
        agents = state.get("ua")
        if not agents:
            return {}
        since = ts - self.horizon
        alive = sorted(a for a, t in agents.items() if t >= since)
        return {"shared_user_agents": alive[: self.config.sample_size]} if alive else {}

    def _group(self, edges: dict[str, int], start: str, since: int) -> tuple[str, ...]:
        alive: dict[str, list[str]] = {}
        for pair, t in edges.items():
            if t >= since:
                a, b = pair.split(SEP)
                alive.setdefault(a, []).append(b)
                alive.setdefault(b, []).append(a)
        seen = {start}
        todo = [start]
        while todo:
            for nxt in alive.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return tuple(sorted(seen))

    def _start_tokens(
        self, groups: dict[str, Any], members: set[str], ts: int, rate: float, burst: float
    ) -> float:
        tokens = burst
        for gkey, g in groups.items():
            if members.intersection(gkey.split(SEP)):
                tokens = min(tokens, g["tokens"] + rate * (ts - g["at"]) / US_PER_S)
        return min(tokens, burst)


def _links_agents(config: DetectorConfig) -> bool:
    # AgentLinks changes nothing unless user agents link accounts
    return "user_agent" in config.link_fields


def _pair(a: str, b: str) -> str:
    return f"{a}{SEP}{b}" if a < b else f"{b}{SEP}{a}"


DETECTOR = Detector(
    name=NAME,
    clause="Do not attempt to circumvent throttling quotas through the creation of multiple "
    "Developer accounts within the same region.",
    reasons=(
        Reason(
            "shared_quota",
            Severity.MEDIUM,
            "Linked developer accounts {developer_ids} together exceeded the {operation} "
            "quota of seller {seller_id} in {region}",
            ("region", "seller_id", "operation", "developer_ids"),
        ),
    ),
    steps=(
        Step("L", "detect", key=("source_ip",), inputs=("api_call",), build=Links),
        Step(
            "G",
            "detect",
            key=("user_agent",),
            inputs=("api_call",),
            build=AgentLinks,
            live=_links_agents,
        ),
        Step(
            "T",
            "throttle",
            key=("region", "seller_id", "operation"),
            inputs=("forward:L", "forward:G"),
            build=SharedQuota,
        ),
    ),
    settings=(
        "throttle.link_horizon",
        "throttle.link_fields",
        "throttle.link_ignore",
        "throttle.link_ignore_values",
        "throttle.window",
        "throttle.min_excess_calls",
        "throttle.plans",
        "throttle.default_plan",
    ),
    list_fields=frozenset({"developer_ids"}),
)

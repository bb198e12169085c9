"""The tuned configuration the generator also keeps a truth for.

It differs from the defaults of deploy/aupwatch.toml in the throttle linking (accounts are
also linked by user agent; the injected proxy network and the SDK's default user agent
link no one) and in the ``[[exceptions]]`` the injected cases add. ``aupwatch generate
--tuned`` writes the truth under it and ``--tuned-config`` the file itself.
"""

from __future__ import annotations

from typing import Any

import orjson

# a shared corporate proxy / carrier-grade NAT: only the injected cases call from it
PROXY_NETWORK = "100.64.0.0/24"
# an SDK's default user agent, sent unchanged by unrelated developers
SDK_USER_AGENT = "amzn-sp-api-sdk/1.0.0 (default)"
LINK_FIELDS = ("source_ip", "user_agent")
# which configurations a truth entry holds for
BOTH, DEFAULT, TUNED = "both", "default", "tuned"


def proxy_address(n: int) -> str:
    """The ``n``-th address of the proxy network (1..254)."""
    return f"100.64.0.{n}"


def alert_key(alert: dict[str, Any]) -> bytes:
    """A truth entry as comparable bytes (detector, reason, subject)."""
    return orjson.dumps(alert, option=orjson.OPT_SORT_KEYS)


def _value(value: Any) -> str:
    """A TOML value: JSON strings and lists of strings are valid TOML."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in sorted(value.items())) + " }"
    return orjson.dumps(value).decode()


def render(exceptions: list[dict[str, Any]]) -> str:
    """The tuned configuration file as TOML text."""
    lines = [
        "# Tuned configuration of a generated set (aupwatch generate --tuned-config): the",
        "# defaults of deploy/aupwatch.toml, except what follows.",
        "[throttle]",
        f"link_fields = {_value(list(LINK_FIELDS))}",
        f"link_ignore = {_value([PROXY_NETWORK])}",
        f"link_ignore_values = {_value([SDK_USER_AGENT])}",
    ]
    for rule in exceptions:
        lines += ["", "[[exceptions]]"]
        lines += [f"{name} = {_value(value)}" for name, value in rule.items()]
    return "\n".join(lines) + "\n"

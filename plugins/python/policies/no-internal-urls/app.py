"""`no-internal-urls`: a moat guard policy written in Python that stops server-side request
forgery. An agent talked into fetching `http://169.254.169.254/latest/meta-data/` (a cloud
metadata service), `http://localhost:6379` or a host on the office network is denied:

- before a call (check-call): every string in the arguments, at any depth, that is a URL
  (`scheme://host...`) is looked at;
- before each effect (check-effect): the target of every `http` effect, the URL the tool
  is actually about to reach (so a tool that builds its URL itself is caught too).

A URL is internal when its host is `localhost` (or a name under it), ends in `.internal`,
`.local` or `.localhost`, or is an IP address that is loopback, private, link-local,
unspecified, reserved or multicast (IPv4, IPv6, and IPv4-mapped IPv6). The reason names the
URL and why. Outputs are not looked at (check-result allows).

Built into a component by componentize-py from moat's own WIT world (`guard-plugin`):
`just plugins` writes target/wasm/python-policies/no-internal-urls.wasm; copy it into the
policies directory of moat.toml. Every check runs on a fresh instance, under the guard's
budgets; any failure of the guard denies the call (fail closed).
"""

import ipaddress
import json
import re
from urllib.parse import urlsplit

from wit_world import exports
from wit_world.exports import guard

URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
INTERNAL_SUFFIXES = (".internal", ".local", ".localhost")


def internal(url):
    """Why `url` points inside, or None when it does not."""
    try:
        host = urlsplit(url).hostname
    except ValueError as error:
        return f"it cannot be parsed ({error})"
    if not host:
        return None
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(INTERNAL_SUFFIXES):
        return f"`{host}` is a local name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a public-looking name
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for kind in ("loopback", "private", "link_local", "unspecified", "reserved", "multicast"):
        if getattr(address, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    return None


def strings(value):
    """Every string in a JSON value, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)


def verdict(url):
    why = internal(url)
    if why is None:
        return guard.Verdict_Allow()
    return guard.Verdict_Deny(f"`{url}` points inside the network: {why}")


class Guard(exports.Guard):
    def describe(self):
        return guard.GuardInfo(
            name="no-internal-urls",
            description="Denies calls and HTTP effects aimed at localhost, private, "
            "link-local (cloud metadata) or other internal addresses.",
        )

    def check_call(self, call):
        for text in strings(json.loads(call.args)):
            if URL.match(text):
                answer = verdict(text)
                if not isinstance(answer, guard.Verdict_Allow):
                    return answer
        return guard.Verdict_Allow()

    def check_effect(self, call, effect):
        if effect.capability != "http":
            return guard.Verdict_Allow()
        return verdict(effect.target)

    def check_result(self, call, output):
        return guard.Verdict_Allow()

"""Which values are secret, and how every output hides them.

Pure: no I/O. A secret is shown only as a short digest (`<secret sha256:1a2b3c4d>`), so a plan still says
*that* a secret changed without saying what it is. `Redactor.scrub` is the last line of defence: every
message, log line and report passes through it and loses any known secret value it contains.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Env var / property variable names treated as secret by default (issue: *PASSWORD*, *SECRET*, *TOKEN*, *KEY*).
DEFAULT_SECRET_NAME_PATTERN = r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|JAAS|USER_INFO"
# Connector config keys that hold credentials. `key.converter` must not match; `.key` at the end does.
SECRET_CONFIG_KEY = re.compile(
    r"password|passwd|secret|token|jaas\.config|user\.info|credential|api\.key|private\.key|access\.key|"
    r"\.key$|^key$",
    re.IGNORECASE,
)
# Shorter values would mask ordinary words in free text; they are still masked as whole fields.
MIN_SCRUB_LENGTH = 4
# Values that cannot be told apart from ordinary config even when an env var named *KEY* holds them.
_ORDINARY = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off"})


def scrubbable(value: str) -> bool:
    """Whether a known secret value is distinctive enough to hunt for inside other text."""
    return len(value) >= MIN_SCRUB_LENGTH and value.lower() not in _ORDINARY and not value.isdigit()


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


def mask(value: str) -> str:
    return f"<secret sha256:{digest(value)}>"


def secret_names(names: Iterable[str], *, pattern: str = DEFAULT_SECRET_NAME_PATTERN) -> set[str]:
    rx = re.compile(pattern, re.IGNORECASE)
    return {n for n in names if rx.search(n)}


@dataclass(frozen=True, slots=True)
class Redactor:
    secret_values: frozenset[str] = frozenset()

    def is_secret_field(self, key: str, value: str) -> bool:
        if SECRET_CONFIG_KEY.search(key):
            return True
        # A short secret ("1", "true" from an env var named *KEY*) would mark half the config secret.
        return any(s in value for s in self.secret_values if scrubbable(s))

    def secret_keys(self, config: Mapping[str, str]) -> frozenset[str]:
        return frozenset(k for k, v in config.items() if self.is_secret_field(k, v))

    def mask_config(self, config: Mapping[str, str], *, secret_keys: Iterable[str] = ()) -> dict[str, str]:
        extra = set(secret_keys)
        return {k: mask(v) if (k in extra or self.is_secret_field(k, v)) else v for k, v in config.items()}

    def scrub(self, text: str) -> str:
        for secret in sorted(self.secret_values, key=len, reverse=True):
            if scrubbable(secret) and secret in text:
                text = text.replace(secret, mask(secret))
        return text

    def scrub_tree(self, value: Any) -> Any:
        """Every string inside `value` (nested dicts, lists, tuples, sets) scrubbed; other values kept."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, Mapping):
            return {k: self.scrub_tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub_tree(v) for v in value]
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        return value

    def with_values(self, values: Iterable[str]) -> Redactor:
        return Redactor(self.secret_values | frozenset(v for v in values if v))

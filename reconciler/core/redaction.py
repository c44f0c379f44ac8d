"""Which values are secret, and how every output hides them.

Pure: no I/O. A secret is shown only as a short digest (`<secret sha256:1a2b3c4d>`), so a plan still says
*that* a secret changed without saying what it is. `Redactor.scrub` is the last line of defence: every
message, log line and report passes through it and loses any known secret value it contains, in every
form the value can take on its way out (see `encodings` and `Redactor.scrub`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
# A line of a multi-line secret, or a cut-off start of one, is hunted for only from this length: shorter
# pieces ("MII", "-----") occur in every PEM and in ordinary text.
MIN_PART_LENGTH = 8
# Values that cannot be told apart from ordinary config even when an env var named *KEY* holds them.
_ORDINARY = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off"})
# PEM armor is the same in every key and certificate: as a line of its own it says nothing secret, and
# hunting for it would mark any config holding a public certificate as secret.
_PEM_ARMOR = re.compile(r"-----(?:BEGIN|END)[A-Z0-9 ]*-----")
# How a cut-off text says it was cut: jq's type errors quote `"supersecret-val...`, and
# `clients.connect` marks its own truncation the same way.
_ELLIPSES = ("...", "\u2026")
# Kafka's ConfigTransformer syntax, `${provider:[path:]key}` (org.apache.kafka.common.config.ConfigTransformer).
_PROVIDER_REFERENCE = re.compile(r"\$\{([^}]*?):(?:([^}]*?):)?([^}]*?)\}")
_SECRET_NAME = re.compile(DEFAULT_SECRET_NAME_PATTERN, re.IGNORECASE)


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


def references_secret(value: str) -> bool:
    """Whether `value` holds a config-provider reference to something named like a secret
    (`${file:/secrets/db:password}`, `${env:API_TOKEN}`). The value such a reference replaced — still
    live in Connect until the write — was that secret in clear, known to the reconciler or not."""
    for m in _PROVIDER_REFERENCE.finditer(value):
        for part in m.groups(""):  # the provider (`vault`, `secretsmanager`), the path, the key
            if _SECRET_NAME.search(part) or SECRET_CONFIG_KEY.search(part):
                return True
    return False


def _escaped(text: str) -> set[str]:
    # jq's `tojson` and `error({...})` keep UTF-8 and Python's json writes \uXXXX; a JSON text inside a
    # JSON string (a `tojson` value in a JSON plan or log line) is escaped twice.
    once = {json.dumps(text, ensure_ascii=ascii_only)[1:-1] for ascii_only in (False, True)}
    return once | {json.dumps(e, ensure_ascii=ascii_only)[1:-1] for e in once for ascii_only in (False, True)}


def encodings(secret: str) -> frozenset[str]:
    """Every form of a known secret that `Redactor.scrub` replaces wherever it occurs.

    The value itself (when `scrubbable`); the value with every whitespace run collapsed to one space (how
    Connect's one-line error messages reach us); each line of a multi-line value that is at least
    MIN_PART_LENGTH long, scrubbable and not PEM armor; and each of those JSON-escaped (UTF-8 kept or
    \\uXXXX, once or twice) and percent-encoded (a connector name in a URL path). Empty when the value
    is too short or too ordinary to hunt for."""
    if not scrubbable(secret):
        return frozenset()
    bases = {secret, " ".join(secret.split())}
    if "\n" in secret or "\r" in secret:
        bases |= {
            line
            for line in (raw.strip() for raw in secret.splitlines())
            if len(line) >= MIN_PART_LENGTH and scrubbable(line) and not _PEM_ARMOR.fullmatch(line)
        }
    forms: set[str] = set()
    for base in bases:
        if scrubbable(base):
            forms |= {base, quote(base, safe=""), *_escaped(base)}
    return frozenset(forms)


def _cut_after(text: str, end: int) -> bool:
    """Whether `text` visibly stops at `end`: an ellipsis, a line break or the end of the text follows."""
    return end == len(text) or text[end] in "\r\n" or text.startswith(_ELLIPSES, end)


def _matching_length(text: str, start: int, form: str) -> int:
    """The length of the longest start of `form` that `text` holds at `start` (binary search)."""
    low, high = 0, min(len(form), len(text) - start)
    while low < high:
        mid = (low + high + 1) // 2
        if text.startswith(form[:mid], start):
            low = mid
        else:
            high = mid - 1
    return low


def _cut_end(text: str, start: int, form: str) -> int | None:
    """The end of the longest proper start (>= MIN_PART_LENGTH) of `form` that `text` holds at `start`
    and that visibly stops there, or None. A whole form is matched as such, not here."""
    held = _matching_length(text, start, form)
    if held == len(form):
        return None
    for length in range(held, MIN_PART_LENGTH - 1, -1):
        if _cut_after(text, start + length) and scrubbable(form[:length]):
            return start + length
    return None


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


def _trie(words: list[str]) -> str:
    """`words` (sorted, distinct; "" for a word that ends here) as one regex matching the longest of them.

    The same matches as an alternation sorted longest-first, but as a trie: each position costs one walk
    down shared prefixes instead of one attempt per word, which is 4-5x faster with a few hundred forms."""
    ends = bool(words) and words[0] == ""
    rest = words[1:] if ends else words
    branches = []
    i = 0
    while i < len(rest):
        j = i
        while j < len(rest) and rest[j][0] == rest[i][0]:
            j += 1
        prefix = _common_prefix(rest[i], rest[j - 1])  # of the whole group, since it is sorted
        branches.append(re.escape(prefix) + _trie([w[len(prefix) :] for w in rest[i:j]]))
        i = j
    if not branches:
        return ""
    body = "|".join(branches)
    if ends:
        return f"(?:{body})?"  # greedy: the longer word wins, the shorter one is the fallback
    return body if len(branches) == 1 else f"(?:{body})"


def _alternation(words: Iterable[str]) -> str:
    return _trie(sorted(set(words)))


@dataclass(frozen=True, slots=True)
class _Needles:
    """What `scrub` hunts for, built once per Redactor."""

    owner: Mapping[str, str]  # form -> the secret it is a form of (its mask shows that secret's digest)
    forms: re.Pattern[str] | None  # the longest form at each position (zero-width, so overlaps show)
    heads: re.Pattern[str] | None  # the first MIN_PART_LENGTH characters of every longer form
    by_head: Mapping[str, tuple[str, ...]]  # head -> the forms it starts

    @classmethod
    def build(cls, secrets: Iterable[str]) -> _Needles:
        owner: dict[str, str] = {}
        ordered = sorted(secrets, key=lambda s: (-len(s), s))
        for secret in ordered:
            if scrubbable(secret):
                owner[secret] = secret  # a value that is itself a secret shows its own digest
        for secret in ordered:
            for form in encodings(secret):
                owner.setdefault(form, secret)
        if not owner:
            return cls({}, None, None, {})
        by_head: dict[str, list[str]] = {}
        for form in sorted(owner):
            if len(form) > MIN_PART_LENGTH:
                by_head.setdefault(form[:MIN_PART_LENGTH], []).append(form)
        heads = re.compile(f"(?=({_alternation(by_head)}))") if by_head else None
        return cls(
            owner,
            re.compile(f"(?=({_alternation(owner)}))"),
            heads,
            {head: tuple(forms) for head, forms in by_head.items()},
        )

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, secret) of every form found in `text`, and of every cut-off start of one."""
        found: list[tuple[int, int, str]] = []
        if self.forms is not None:
            for m in self.forms.finditer(text):
                found.append((m.start(), m.start() + len(m.group(1)), self.owner[m.group(1)]))
        if self.heads is not None:
            for m in self.heads.finditer(text):
                start = m.start()
                cuts = [
                    (end, form) for form in self.by_head[m.group(1)] if (end := _cut_end(text, start, form))
                ]
                if cuts:
                    end, form = max(cuts, key=lambda c: c[0])
                    found.append((start, end, self.owner[form]))
        return found


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    """`text` with every span masked; overlapping spans become one mask (the earliest span's secret)."""
    out: list[str] = []
    pos = 0
    spans.sort(key=lambda s: (s[0], -s[1]))
    i = 0
    while i < len(spans):
        start, end, secret = spans[i]
        i += 1
        while i < len(spans) and spans[i][0] < end:
            end = max(end, spans[i][1])
            i += 1
        out.append(text[pos:start])
        out.append(mask(secret))
        pos = end
    out.append(text[pos:])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Redactor:
    secret_values: frozenset[str] = frozenset()
    _needles: _Needles = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_needles", _Needles.build(self.secret_values))

    def contains_secret(self, text: str) -> bool:
        """Whether `text` holds any known secret in any of its `encodings`."""
        forms = self._needles.forms
        return forms is not None and forms.search(text) is not None

    def is_secret_field(self, key: str, value: str) -> bool:
        if SECRET_CONFIG_KEY.search(key):
            return True
        # A short secret ("1", "true" from an env var named *KEY*) would mark half the config secret:
        # `encodings` leaves those out.
        return self.contains_secret(value)

    def secret_keys(self, config: Mapping[str, str]) -> frozenset[str]:
        return frozenset(k for k, v in config.items() if self.is_secret_field(k, v))

    def mask_config(self, config: Mapping[str, str], *, secret_keys: Iterable[str] = ()) -> dict[str, str]:
        extra = set(secret_keys)
        return {k: mask(v) if (k in extra or self.is_secret_field(k, v)) else v for k, v in config.items()}

    def scrub(self, text: str) -> str:
        """`text` with every known secret masked, in every form `encodings` lists, and with every cut-off
        start of one masked too.

        A cut-off start is the first k characters of a form (MIN_PART_LENGTH <= k < its length) directly
        followed by `...` (or `…`), a line break, or the end of the text: jq quotes only the start of a
        string in its errors (`string ("supersecre...) and number (1) cannot be added`), and a message
        cut to a maximum length ends in the middle of whatever it was quoting. Without such a visible cut
        a shared start is not masked, so `https://` or `jdbc:postgresql://` in an ordinary value stays
        readable when a secret URL starts the same way. Each mask shows the digest of the whole secret."""
        if self._needles.forms is None or not text:
            return text
        spans = self._needles.spans(text)
        return _replace(text, spans) if spans else text

    def scrub_tree(self, value: Any) -> Any:
        """Every string inside `value` (nested dicts — keys included —, lists, tuples, sets) scrubbed;
        other values kept."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, Mapping):
            return {self.scrub(k) if isinstance(k, str) else k: self.scrub_tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub_tree(v) for v in value]
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        return value

    def with_values(self, values: Iterable[str]) -> Redactor:
        return Redactor(self.secret_values | frozenset(v for v in values if v))

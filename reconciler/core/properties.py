"""Java-style `.properties` files turned into jq variables, the way connect-operator templates expect them.

Pure: takes file texts, returns dicts (no I/O, environment, clock or logging). Files are parsed exactly
as `java.util.Properties.load(Reader)` reads them (continuation lines, escapes, trailing white space
kept), so Kafka's own `*.properties` mean the same here. `schema.registry.url=x` becomes
`$SCHEMA_REGISTRY_URL` = "x". Unlike connect-operator, values are never shell-evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

_JAAS_USER = re.compile(r'\busername\s*=\s*"([^"]*)"')
_JAAS_PASS = re.compile(r'\bpassword\s*=\s*"([^"]*)"')


def parse_properties(text: str) -> dict[str, str]:
    r"""Parse `text` exactly as `java.util.Properties.load(Reader)` does; later duplicate keys win.

    Natural lines end at `\n`, `\r` or `\r\n`; one ending in an odd number of backslashes continues on
    the next, whose leading white space (space, tab, form feed) is dropped. Blank lines and comment
    lines (first non-white-space `#` or `!`; never continued) are skipped; a continuation line is a
    comment only if nothing precedes it in its logical line. The key runs to the first unescaped `=`,
    `:` or white space; then white space, at most one `=` or `:`, and white space again are skipped,
    and the rest, trailing white space included, is the value ("" if nothing is left). In keys and
    values `\t \n \r \f \uXXXX` are decoded and any other escaped character stands for itself (`\=`,
    `\:`, `\ `, `\#`, `\\`). A malformed `\uXXXX` raises ValueError naming the line but not the text,
    as values may be secrets.
    """
    result: dict[str, str] = {}
    for segments, logical in _logical_lines(text):
        value_start = _value_start(logical)
        try:
            key = _unescape(logical, 0, _key_end(logical))
            value = _unescape(logical, value_start, len(logical))
        except _MalformedEscape as exc:
            line_no = next(n for offset, n in reversed(segments) if offset <= exc.offset)
            raise ValueError(f"line {line_no}: malformed \\uxxxx encoding (\\u needs 4 hex digits)") from None
        result[key] = value
    return result


_TERMINATOR = re.compile(r"(\r\n|\r|\n)")
_WHITE = " \t\f"  # the format's white space; line terminators never reach the key/value split
_SEPARATORS = "=:"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_HEX = frozenset("0123456789abcdefABCDEF")


class _MalformedEscape(Exception):
    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


def _logical_lines(text: str) -> Iterator[tuple[list[tuple[int, int]], str]]:
    """Each logical line (leading white space and continuations removed) with the natural lines it
    spans, as (offset in the logical line, 1-based line number) pairs."""
    pieces = _TERMINATOR.split(text)
    natural, ends = pieces[0::2], pieces[1::2]  # ends[i] terminates natural[i]; the last has none
    i = 0
    while i < len(natural):
        line = natural[i].lstrip(_WHITE)
        i += 1
        parts: list[str] = []
        segments: list[tuple[int, int]] = []
        length = 0
        yields_empty = False
        while True:
            if length == 0 and line[:1] in ("#", "!"):
                # A comment, even on a continuation line when nothing precedes it (Java does the same);
                # its own trailing backslash continues nothing.
                break
            segments.append((length, i))
            if (len(line) - len(line.rstrip("\\"))) % 2 == 0:
                parts.append(line)
                break
            parts.append(line[:-1])  # the backslash escaping the terminator belongs to neither line
            length += len(line) - 1
            if i == len(natural):
                yields_empty = True  # a backslash ending the input is dropped
                break
            # Java quirk, kept: a logical line of nothing but continuations still yields the key ""
            # when the input ends right after a one-character terminator.
            yields_empty = i == len(natural) - 1 and not natural[i] and ends[i - 1] != "\r\n"
            line = natural[i].lstrip(_WHITE)
            i += 1
        logical = "".join(parts)
        # Blank lines, comments, and logical lines left empty by continuations yield nothing (but see above).
        if logical or (yields_empty and segments):
            yield segments, logical


def _key_end(line: str) -> int:
    """Index of the first unescaped separator or white space (or the line's length)."""
    pos = 0
    while pos < len(line):
        c = line[pos]
        if c == "\\":
            pos += 2  # whatever follows is part of the key
            continue
        if c in _SEPARATORS or c in _WHITE:
            return pos
        pos += 1
    return len(line)


def _value_start(line: str) -> int:
    """After the key: white space, at most one `=` or `:`, white space; the value starts after them."""
    pos = _key_end(line)
    separated = False
    while pos < len(line):
        c = line[pos]
        if c in _SEPARATORS and not separated:
            separated = True
        elif c not in _WHITE:
            break
        pos += 1
    return pos


def _unescape(line: str, start: int, end: int) -> str:
    """Decode line[start:end]; raises _MalformedEscape(offset of the backslash) on a bad `\\u`."""
    out: list[str] = []
    pos = start
    while pos < end:
        c = line[pos]
        if c != "\\":
            out.append(c)
            pos += 1
            continue
        if pos + 1 >= end:
            break  # cannot happen for a whole logical line (its trailing backslashes are paired)
        c = line[pos + 1]
        if c == "u":
            digits = line[pos + 2 : pos + 6]
            if pos + 6 > end or not _HEX.issuperset(digits):
                raise _MalformedEscape(pos)
            out.append(chr(int(digits, 16)))
            pos += 6
        else:
            out.append(_ESCAPES.get(c, c))  # any other escaped character stands for itself
            pos += 2
    decoded = "".join(out)
    # Java strings are UTF-16, so \uD83D\uDE00 is one character: join such pairs (lone surrogates stay).
    if any("\ud800" <= ch <= "\udfff" for ch in decoded):
        decoded = decoded.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return decoded


def variable_name(key: str) -> str:
    """`schema.registry.url` -> `SCHEMA_REGISTRY_URL`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", key).upper()


def to_jq_vars(files: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Merge (file name, text) pairs into jq variables. Later files win; returns (vars, warnings)."""
    merged, _origins, warnings = merge_properties(files)
    return merged, warnings


def merge_properties(
    files: Iterable[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, tuple[str, str]], list[str]]:
    """`to_jq_vars`, also naming where each variable came from: (vars, {var: (file name, key)}, warnings).
    The origin is what a FileConfigProvider placeholder needs to point the worker at the same value."""
    merged: dict[str, str] = {}
    origin: dict[str, tuple[str, str]] = {}
    warnings: list[str] = []
    for name, text in files:
        try:
            parsed = parse_properties(text)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        for key, value in parsed.items():
            var = variable_name(key)
            if var in merged and merged[var] != value:
                warnings.append(f"${var} is set in {origin[var][0]} and again in {name}; {name} wins")
            merged[var] = value
            origin[var] = (name, key)
    return merged, origin, warnings


def jaas_credentials(variables: Mapping[str, str]) -> dict[str, str]:
    """connect-operator exported KAFKA_API_KEY/SECRET from sasl.jaas.config; Cloud templates read them."""
    jaas = variables.get("SASL_JAAS_CONFIG", "")
    user, password = _JAAS_USER.search(jaas), _JAAS_PASS.search(jaas)
    found: dict[str, str] = {}
    if user:
        found["KAFKA_API_KEY"] = user.group(1)
    if password:
        found["KAFKA_API_SECRET"] = password.group(1)
    return found

"""Which Apache Kafka release a Connect worker runs, from the `version` of `GET /`, and what it supports.

Pure. Confluent Platform workers report their own version with a `-ccs` (community) or `-ce`
(enterprise) suffix, e.g. `7.6.0-ccs`, which is Kafka 3.6, not 7.6; the release lines are mapped as
Confluent's interoperability table gives them (CP 5.x = AK 2.x, 6.0-6.2 = AK 2.6-2.8, 7.x = AK 3.x,
8.x = AK 4.x).
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"^\s*(\d+)\.(\d+)(?:\.\d+)?(.*)$")
_CONFLUENT_SUFFIX = re.compile(r"^-(ccs|ce)\b", re.IGNORECASE)


def _confluent_to_kafka(major: int, minor: int) -> tuple[int, int] | None:
    match major:
        case 4:
            return (1, minor)
        case 5:
            return (2, minor)
        case 6:
            return (2, 6 + minor)
        case 7:
            return (3, minor)
        case 8:
            return (4, minor)
    return None


def kafka_version(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of the Apache Kafka release behind a worker's version string; None if unknown."""
    if not version:
        return None
    m = _VERSION.match(version)
    if m is None:
        return None
    major, minor, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    if _CONFLUENT_SUFFIX.match(rest):
        return _confluent_to_kafka(major, minor)
    return (major, minor)


def supports_initial_state(version: str | None) -> bool:
    """POST /connectors accepts `initial_state` since Kafka 3.7 (KIP-980); unknown versions do not."""
    found = kafka_version(version)
    return found is not None and found >= (3, 7)

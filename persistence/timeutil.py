"""UTC timestamps with one textual form, so stored, hashed and sent times agree."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_ts", "parse_ts", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_ts(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z``: fixed width, sorts as text."""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    # isoformat pads the year to four digits (strftime's %Y does not everywhere) and is
    # twice as fast; a write formats its instant several times.
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_ts(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without zone is taken as UTC. Raises ValueError."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    value = datetime.fromisoformat(cleaned)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before the first UTC time
        raise ValueError(f"{text!r} is out of range") from None

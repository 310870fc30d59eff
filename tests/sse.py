"""A small real Server-Sent Events client for tests (over requests, real HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests


@dataclass
class Event:
    id: int | None
    name: str
    data: dict[str, Any]


@dataclass
class Comment:
    text: str


def read_stream(
    url: str, headers: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[Event | Comment]:
    """Yield events and comments as they arrive; ends when the server closes."""
    with requests.get(url, headers=headers or {}, stream=True, timeout=timeout) as response:
        assert response.status_code == 200, (response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("text/event-stream")
        buffer = ""
        for chunk in response.iter_content(chunk_size=None, decode_unicode=True):
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                parsed = parse_block(block)
                if parsed is not None:
                    yield parsed


def parse_block(block: str) -> Event | Comment | None:
    fields: dict[str, str] = {}
    comments = []
    for line in block.split("\n"):
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
    if "data" in fields:
        return Event(
            int(fields["id"]) if "id" in fields else None,
            fields.get("event", "message"),
            json.loads(fields["data"]),
        )
    if comments:
        return Comment(" ".join(comments))
    return None  # e.g. a bare ``retry:`` block


def events_until_closed(url: str, **headers: str) -> list[Event]:
    return [item for item in read_stream(url, headers) if isinstance(item, Event)]

"""A raw run's ``primary`` stream with its parts looked up once per run.

A composite Tiled node lists its contents again for every ``key in stream`` and
every ``stream[key]`` (three requests per lookup): reading one burst's four
keys cost ~20 requests, about a second of the post-run path on a busy server.
"""

from __future__ import annotations

from typing import Any

__all__ = ["StreamParts"]


class StreamParts:
    """A raw run's ``primary`` stream; ``key in parts``, ``parts[key]`` as on the node.

    The array parts, their clients and their data sources come from one
    listing; a burst then costs its four reads. Other parts (a table's columns)
    are looked up on the node the first time and kept.
    """

    def __init__(self, node: Any) -> None:
        self._stream = node["primary"]
        self._clients: dict[str, Any] = {}
        self._columns: set[str] | None = None
        base = getattr(self._stream, "base", None)
        if base is None:  # not a composite node: ask it, as it answers
            return
        # Array parts come with their clients, and their files (the reader
        # checks them), in one listing; a table's columns (events stored as
        # rows) are looked up through the node.
        self._columns = set()
        for key, part in base.new_variation(include_data_sources=True).items():
            if getattr(part, "structure_family", None) == "array":
                self._clients[key] = part
            else:
                self._columns.update(getattr(part, "columns", None) or ())

    def __contains__(self, key: str) -> bool:
        if self._columns is None:
            return key in self._stream
        return key in self._clients or key in self._columns

    def __getitem__(self, key: str) -> Any:
        if key not in self._clients:
            self._clients[key] = self._stream[key]
        return self._clients[key]

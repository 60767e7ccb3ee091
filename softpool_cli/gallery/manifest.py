"""The gallery's record of what each earlier run made: ``DIR/.softpool-gallery.json``.

Per input: the content hash of the source, the settings that shape the outputs, the outputs
and their scores. An input is up to date when its record matches and its outputs exist; size
and modification time stand in for the hash when they match (as ``make`` and ``git`` do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softpool_cli.gallery.jobs import Outcome
    from softpool_cli.media.discovery import Candidate

MANIFEST_NAME = ".softpool-gallery.json"


class Manifest:
    """The record of what each earlier run made, kept in ``DIR/.softpool-gallery.json``."""

    VERSION = 1

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / MANIFEST_NAME
        self.out_dir = out_dir
        self.entries: dict[str, dict] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") == self.VERSION and isinstance(data.get("entries"), dict):
                self.entries = data["entries"]
        except (OSError, ValueError, AttributeError):
            pass  # no record, or an unreadable one: everything is redone

    def is_fresh(self, key: str, source: Path, stamp: dict) -> bool:
        """Whether the outputs recorded for ``key`` are those ``source`` would give now."""
        from softpool_cli.gallery.jobs import file_sha256

        entry = self.entries.get(key)
        if not entry or entry.get("settings") != stamp or entry.get("source") != _source_key(source, self.out_dir):
            return False
        if not all((self.out_dir / path).is_file() for path in entry.get("outputs", {}).values()):
            return False
        status = source.stat()
        if status.st_size != entry.get("size"):
            return False
        if status.st_mtime_ns != entry.get("mtime_ns"):
            if file_sha256(source) != entry.get("sha256"):
                return False
            entry["mtime_ns"] = status.st_mtime_ns  # same content, touched: remember the new time
        return True

    def record(self, key: str, candidate: Candidate, stamp: dict, outcome: Outcome) -> None:
        self.entries[key] = {
            "source": _source_key(candidate.source, self.out_dir),
            "name": candidate.name,
            "kind": candidate.kind,
            "size": outcome.size,
            "mtime_ns": outcome.mtime_ns,
            "sha256": outcome.sha256,
            "settings": stamp,
            "outputs": outcome.outputs,
            "scores": outcome.scores,
        }

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)

    def save(self) -> None:
        from softpool_cli.media.files import write_files_atomically

        data = json.dumps({"version": self.VERSION, "entries": self.entries}, indent=1, sort_keys=True)
        write_files_atomically({self.path: data.encode("utf-8")}, overwrite=True)


def _source_key(source: Path, out_dir: Path) -> str:
    """How the record names a source: relative to DIR, so a moved project stays valid."""
    from softpool_cli.gallery.jobs import relative_link

    return relative_link(source, out_dir) or str(source.resolve())

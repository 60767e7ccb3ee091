"""What a batch has to do: the files under SRC, their outputs under DST, and what is up to date.

The record, ``DST/.softpool-batch.jsonl``, gets one line per finished file (its source, the
output written, the source's fingerprint and the settings' stamp), appended and flushed as each
file completes, so a batch stopped at any point resumes where it was. A file is skipped when
its last record matches its fingerprint (size and modification time, or an object store's
ETag) and the settings, and its output exists. The report, ``DST/softpool-report.jsonl``, lists
this run's failures, one JSON object per line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

RECORD_NAME = ".softpool-batch.jsonl"
REPORT_NAME = "softpool-report.jsonl"


@dataclass(frozen=True)
class Item:
    """One file to pool: its URL or path, its output's without suffix, and its fingerprint."""

    source: str
    relative: str  # path under SRC, "/"-separated
    target_base: str
    fingerprint: str


def join(base: str, relative: str) -> str:
    return base.rstrip("/") + "/" + relative if relative else base


def fingerprint(info: dict) -> str:
    """Size and change marker of a file as fsspec describes it."""
    marker = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or info.get("created")
    return f"{info.get('size')}:{marker}"


def find_items(source: str, destination: str) -> Iterator[Item]:
    """Every file under ``source`` (a file, a folder, or an fsspec URL of either), sorted, hidden
    names and the destination itself left out."""
    import fsspec

    filesystem, root = fsspec.core.url_to_fs(source)
    _, destination_root = fsspec.core.url_to_fs(destination)
    protocol = source.split("://", 1)[0] + "://" if "://" in source else ""
    if filesystem.isfile(root):
        info = filesystem.info(root)
        name = root.rstrip("/").rsplit("/", 1)[-1]
        yield Item(source, name, join(destination, name.rsplit(".", 1)[0]), fingerprint(info))
        return
    found = filesystem.find(root, detail=True)
    skip = destination_root.rstrip("/") + "/"
    for path in sorted(found):
        info = found[path]
        if info.get("type") == "directory" or path.startswith(skip):
            continue
        relative = path[len(root.rstrip("/")) + 1 :]
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        stem = relative.rsplit(".", 1)[0] if "." in relative.rsplit("/", 1)[-1] else relative
        yield Item(protocol + path if protocol and not path.startswith(protocol) else path, relative,
                   join(destination, stem), fingerprint(info))  # fmt: skip


class Record:
    """The batch's record of finished files (see the module docstring)."""

    def __init__(self, destination: str) -> None:
        import fsspec

        self.filesystem, root = fsspec.core.url_to_fs(destination)
        self.path = join(root, RECORD_NAME)
        self.entries: dict[str, dict] = {}
        try:
            with self.filesystem.open(self.path, "r") as stream:
                for line in stream:
                    try:
                        entry = json.loads(line)
                        self.entries[entry["source"]] = entry
                    except (ValueError, KeyError):
                        continue  # a line cut by a kill
        except FileNotFoundError:
            pass
        self._pending: list[str] = []

    def is_done(self, item: Item, stamp: str) -> bool:
        entry = self.entries.get(item.relative)
        if not entry or entry.get("fingerprint") != item.fingerprint or entry.get("stamp") != stamp:
            return False
        import fsspec

        target = entry.get("target", "")
        filesystem, path = fsspec.core.url_to_fs(target)
        return bool(target) and filesystem.exists(path)

    def add(self, item: Item, target: str, stamp: str) -> None:
        """Remember a finished file; `flush` writes what was added."""
        entry = {"source": item.relative, "target": target, "fingerprint": item.fingerprint, "stamp": stamp}
        self.entries[item.relative] = entry
        self._pending.append(json.dumps(entry))

    def flush(self) -> None:
        if not self._pending:
            return
        # Appending where the file system can; an object store rewrites the object.
        lines = "\n".join(self._pending) + "\n"
        try:
            with self.filesystem.open(self.path, "a") as stream:
                stream.write(lines)
        except (NotImplementedError, ValueError, OSError):
            content = "".join(json.dumps(entry) + "\n" for entry in self.entries.values())
            with self.filesystem.open(self.path, "w") as stream:
                stream.write(content)
        self._pending.clear()


def write_report(destination: str, failures: list[dict]) -> str:
    """Write this run's failures as JSON lines in DST; return the report's path."""
    import fsspec

    filesystem, root = fsspec.core.url_to_fs(destination)
    path = join(root, REPORT_NAME)
    with filesystem.open(path, "w") as stream:
        for failure in failures:
            stream.write(json.dumps(failure) + "\n")
    return path

"""The configured image set of the annotation UI: content id -> file, nothing else is served.

Ids are the catalog's content ids (``engine.images.ids``). Rows of an existing manifest are reused
when a file's size and mtime are unchanged, so only new files are hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.annotations.records import check_image_id
from engine.catalog import Workdir
from engine.images.ids import file_content_id
from engine.images.manifest import images_root, load_stat_cache, scan_image_files


@dataclass(frozen=True)
class ImageEntry:
    """``path`` is absolute and resolved; ``name`` is the path relative to the set's image root."""

    image_id: str
    path: Path
    name: str


class ImageSet:
    """The images under one folder, by content id, in file-name order."""

    def __init__(self, root: Path, entries: list[ImageEntry]):
        self.root = root
        self.entries = entries
        self._by_id = {e.image_id: e for e in entries}
        self._by_name = {e.name: e for e in entries}

    @classmethod
    def load(cls, images: str | Path, workdir: str | Path | Workdir | None = None) -> ImageSet:
        """Scan ``images`` (or its ``images/`` folder); duplicates by content keep the first path."""
        images = Path(images)
        if not images.is_dir():
            raise ValueError(f"{images}: images folder not found")
        root = images_root(images).resolve()
        known: dict[str, dict] = {}
        if workdir is not None:
            wd = workdir if isinstance(workdir, Workdir) else Workdir.at(workdir)
            if wd.manifest_dir.is_dir():
                known = load_stat_cache(wd.manifest_dir)
        entries, seen = [], set()
        for path in scan_image_files(root):
            resolved = path.resolve()
            stat = resolved.stat()
            row = known.get(str(resolved))
            if row and row["bytes"] == stat.st_size and row["mtime_ns"] == stat.st_mtime_ns:
                image_id = row["image_id"]
            else:
                image_id = file_content_id(resolved)
            if image_id not in seen:
                seen.add(image_id)
                entries.append(ImageEntry(image_id, resolved, path.relative_to(root).as_posix()))
        return cls(root, entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._by_id

    def ids(self) -> list[str]:
        return [e.image_id for e in self.entries]

    def get(self, image_id: str) -> ImageEntry:
        """The entry of ``image_id``; ValueError for a malformed id, KeyError if not in this set."""
        check_image_id(image_id)
        try:
            return self._by_id[image_id]
        except KeyError:
            raise KeyError(f"image {image_id} is not in the configured set {self.root}") from None

    def by_name(self, name: str) -> ImageEntry | None:
        """Entry by relative path, or by bare file name when that is unique."""
        if name in self._by_name:
            return self._by_name[name]
        base = Path(name).name
        matches = [e for e in self.entries if Path(e.name).name == base]
        return matches[0] if len(matches) == 1 else None

"""Finding a dataset's files: in a folder (or one level below it) or in a zip archive."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from recdistill.errors import DataError


@dataclass(frozen=True)
class RawFile:
    """The bytes of one input file and the name errors show (a path, or ``archive.zip:member``)."""

    name: str
    data: bytes


class Container:
    """A folder or a zip archive holding a dataset's files, looked up by file name.

    A file is found directly in the folder, one level below it (GroupLens zips unpack to ``ml-100k/``), or,
    in a zip, as the one member with that base name.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataError(f"{self.path} does not exist; set dataset.path to the folder (or .zip) holding the files")
        self._zip_members: dict[str, list[str]] | None = None
        if self.path.is_file():
            if not zipfile.is_zipfile(self.path):
                raise DataError(f"{self.path} is a file but not a zip archive; point dataset.path at the folder "
                                "holding the dataset files, or at the dataset's .zip")
            with zipfile.ZipFile(self.path) as archive:
                members: dict[str, list[str]] = {}
                for member in archive.namelist():
                    if not member.endswith("/"):
                        members.setdefault(member.rsplit("/", 1)[-1], []).append(member)
            self._zip_members = members

    def __str__(self) -> str:
        return str(self.path)

    def _folder_file(self, name: str) -> Path | None:
        direct = self.path / name
        if direct.is_file():
            return direct
        nested = sorted(p for p in self.path.glob(f"*/{name}") if p.is_file())
        return nested[0] if len(nested) == 1 else None

    def has(self, name: str) -> bool:
        if self._zip_members is not None:
            return len(self._zip_members.get(name, [])) == 1
        return self._folder_file(name) is not None

    def read(self, name: str, expected: str = "") -> RawFile:
        """The file ``name``; a DataError saying what was expected when it is missing."""
        what = f" ({expected})" if expected else ""
        if self._zip_members is not None:
            found = self._zip_members.get(name, [])
            if len(found) != 1:
                problem = "has no member" if not found else f"has {len(found)} members"
                raise DataError(f"{self.path} {problem} named {name}{what}")
            with zipfile.ZipFile(self.path) as archive:
                return RawFile(f"{self.path}:{found[0]}", archive.read(found[0]))
        file = self._folder_file(name)
        if file is None:
            raise DataError(f"{self.path / name} is missing{what}; dataset.path must be the folder holding it")
        return RawFile(str(file), file.read_bytes())

    def digest(self, names: list[str]) -> str:
        """SHA-256 of the named files (or of the whole zip), so changed inputs change the fingerprint."""
        sha = hashlib.sha256()
        if self._zip_members is not None:
            sha.update(self.path.read_bytes())
        else:
            for name in names:
                file = self._folder_file(name)
                if file is not None:
                    sha.update(name.encode() + b"\0" + file.read_bytes())
        return sha.hexdigest()

"""The ``dataset`` group's settings as one value: what every data function takes instead of the config.

:func:`recdistill.recipes.dataset_settings.dataset_settings` reads and validates them once from the composed
config; the defaults live only in the YAML files (``config/conf/dataset/<format>.yaml``), so this class has
none. Values are kept exactly as the config gave them (``3`` stays an int, ``3.0`` a float), because
:meth:`DatasetSettings.record` is what the prepared folder's fingerprint hashes: a change of type would
re-prepare folders whose settings did not change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DatasetSettings:
    format: str                  # the dataset format (a name in recdistill.data.formats)
    name: str                    # folder name under paths.data_dir
    path: str | None             # where the input files are (None: the format's built-in data, if any)
    options: Any                 # the format's own settings: its dataclass (``DatasetFormat.options``)
    download: bool               # whether built-in data may be downloaded
    min_user_interactions: int
    min_item_interactions: int
    rating_threshold: float | None
    duplicates: str              # drop | keep | error
    limit: int | None
    new_items: float             # share of the catalogue held out of training; 0 = off
    new_items_by: str            # random | last
    new_items_seed: int

    def record(self) -> dict:
        """The settings as the YAML spells them, in its order (format, name, path, the format's own keys,
        then the common ones): stored in ``stats.json`` and hashed into the fingerprint."""
        common = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        head = {key: common.pop(key) for key in ("format", "name", "path")}
        return {**head, **asdict(self.options), **common}

    def folder_name(self) -> str:
        return prepared_folder_name(self.name, self.new_items, self.new_items_by, self.new_items_seed)

    def prepared_path(self, data_dir) -> Path:
        """``<data_dir>/<folder_name>``: where these settings' prepared files are."""
        return Path(str(data_dir)).expanduser() / self.folder_name()


def prepared_folder_name(name: str, new_items, new_items_by: str | None, new_items_seed) -> str:
    """``<name>``; with new items held out ``<name>-new<share>-<by><seed>``, so the two never share a folder."""
    if not new_items:
        return str(name)
    return f"{name}-new{float(new_items):g}-{new_items_by}{new_items_seed}"

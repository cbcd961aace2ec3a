"""Version-1 session files into the version-2 layout.

Reading never changes a file: :class:`~gaze_explorer.storage.reader.SessionReader` reads a version-1
file as it is (its one discovery from ``/derived``) and says what it lacks
(:data:`~gaze_explorer.storage.schema.V1_MISSING`). A file is upgraded in place only when it is
written to again (a new run, a discovery, a rename, the saved selection): the version-1 discovery
arrays move from ``/derived`` into ``/discoveries/disc_000`` (marked ``upgraded_from`` = 1, with no
parameters or time stamp, which version 1 did not record) and ``schema_version`` becomes 2 (the root
keeps ``upgraded_from`` = 1, so the reader still reports what version 1 never recorded).
"""

from __future__ import annotations

import h5py
import numpy as np

from gaze_explorer.core.heads import ranking
from gaze_explorer.storage.schema import (
    DERIVED_GROUP,
    DISCOVERIES_GROUP,
    DISCOVERY_ARRAYS,
    SCHEMA_VERSION,
    UPGRADED_ATTR,
    discovery_key,
)


def ranking_array(scores: np.ndarray) -> np.ndarray:
    """``[n, 2]`` int32 (layer, head) of every applicable head, best gaze score first."""
    rows = [(r["layer"], r["head"]) for r in ranking(np.asarray(scores, dtype=np.float64))]
    return np.asarray(rows, dtype=np.int32).reshape(-1, 2)


def upgrade_in_place(f: h5py.File) -> bool:
    """Bring an open, writable version-1 file to the current layout; True if it changed."""
    version = int(np.asarray(f.attrs.get("schema_version", SCHEMA_VERSION)).reshape(-1)[0])
    if version >= SCHEMA_VERSION:
        return False
    parent = f.require_group(DISCOVERIES_GROUP)
    derived = f.get(DERIVED_GROUP)
    names = [n for n in DISCOVERY_ARRAYS.values() if derived is not None and n in derived]
    if names and "gaze_scores" in names and not len(parent):
        g = parent.create_group(discovery_key(0))
        first = derived[names[0]]
        for key in ("n_strips", "n_panels", "cancelled"):
            if key in first.attrs:
                g.attrs[key] = int(first.attrs[key])
        g.attrs["created"] = ""  # version 1 recorded no time stamp, source or parameters
        g.attrs["source"] = ""
        g.attrs["params_json"] = "{}"
        g.attrs[UPGRADED_ATTR] = version
        for name in names:
            g.create_dataset(name, data=derived[name][()], compression="gzip", compression_opts=1)
            del derived[name]
        g.create_dataset("ranking", data=ranking_array(g["gaze_scores"][()]))
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs[UPGRADED_ATTR] = version  # SessionReader.missing: what version 1 never recorded stays missing
    f.flush()
    return True

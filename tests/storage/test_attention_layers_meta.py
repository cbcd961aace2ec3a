"""The session's record of which layers are softmax attention (issue 19, Qwen3.5's hybrid layers):
``attention_layers`` in the model meta, read back by ``SessionReader.attention_layers()`` as a
tuple; None for a file that predates it; a damaged entry is a clear SessionFileError."""

from __future__ import annotations

import pytest
import storage_synthetic as synthetic

from gaze_explorer.core.errors import SessionFileError
from gaze_explorer.storage import SessionReader, SessionWriter


def _written(tmp_path, **model) -> SessionReader:
    grid = synthetic.make_grid()
    path = tmp_path / "s.h5"
    meta = {**synthetic.META, "n_layers": 4, **model}
    SessionWriter(
        path, meta=meta, image=synthetic.make_image(), grid=grid, regions=synthetic.make_regions(grid)
    ).close()
    return SessionReader(path)


def test_attention_layers_round_trip(tmp_path):
    with _written(tmp_path, attention_layers=[3, 1]) as r:
        assert r.attention_layers() == (1, 3)
        assert r.meta["model"]["attention_layers"] == [3, 1]  # meta_json keeps the list as written


def test_a_file_without_the_entry_has_none(tmp_path):
    with _written(tmp_path) as r:
        assert "attention_layers" not in r.meta["model"] and r.attention_layers() is None


@pytest.mark.parametrize("bad", [[1, 4], [-1], ["1"], 3, [True]])
def test_a_damaged_entry_is_refused_with_a_message(tmp_path, bad):
    with _written(tmp_path, attention_layers=bad) as r, pytest.raises(SessionFileError) as err:
        r.attention_layers()
    assert "attention_layers" in str(err.value) and "below its 4 layers" in str(err.value)

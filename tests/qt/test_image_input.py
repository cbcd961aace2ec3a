"""Loading an image by paste (the clipboard) and by drag and drop (a file URL, raw image bytes, Qt
image data) onto the image view; bad input gets a clear message and changes nothing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore, QtGui, QtWidgets

from gaze_explorer.qt.main_window import MainWindow


def _picture(w: int = 48, h: int = 32) -> Image.Image:
    """A small image whose every pixel differs, so a wrong channel order or stride shows."""
    rng = np.random.default_rng(w * h)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _qimage(image: Image.Image) -> QtGui.QImage:
    return QtGui.QImage.fromData(_png_bytes(image), "PNG")


@pytest.fixture
def window(qtbot, tmp_path):
    win = MainWindow()
    qtbot.addWidget(win)
    win.controller.recorder.directory = tmp_path / "sessions"
    win.controller.set_image(_picture(96, 24), 3, "start")
    win.controller.ask_panels = lambda image, current: (current, None)  # the panel dialog answered "keep"
    win.show()
    yield win
    win.controller.shutdown()


def _drop(qtbot, win: MainWindow, mime: QtCore.QMimeData) -> None:
    """Drop ``mime`` on the middle of the image plot, as a drag from another app would."""
    target = win.overlay_view.graphics.viewport()
    pos = QtCore.QPointF(target.width() / 2, target.height() / 2)
    Action = QtCore.Qt.DropAction
    enter = QtGui.QDragEnterEvent(
        pos, Action.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    )
    QtWidgets.QApplication.sendEvent(target, enter)
    assert enter.isAccepted()  # the view under the plot takes the drag
    drop = QtGui.QDropEvent(
        pos, Action.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    )
    QtWidgets.QApplication.sendEvent(target, drop)
    assert drop.isAccepted()


def test_paste_an_image_from_the_clipboard(qtbot, window):
    picture = _picture()
    QtWidgets.QApplication.clipboard().setImage(_qimage(picture))
    paste = next(a for a in window.menuBar().actions()[0].menu().actions() if a.text() == "Paste image")
    assert paste.shortcut().matches(QtGui.QKeySequence(QtGui.QKeySequence.StandardKey.Paste)) is not None
    paste.trigger()
    assert np.array_equal(window.state.session.image, np.asarray(picture))
    assert window.state.session.image_name == "pasted image"
    # raw PNG bytes on the clipboard (as a browser puts them) work the same
    other = _picture(40, 20)
    mime = QtCore.QMimeData()
    mime.setData("image/png", QtCore.QByteArray(_png_bytes(other)))
    QtWidgets.QApplication.clipboard().setMimeData(mime)
    assert window.overlay_view.paste_image()
    assert np.array_equal(window.state.session.image, np.asarray(other))


def test_paste_without_an_image_says_so(qtbot, window):
    before = window.state.session.image.copy()
    QtWidgets.QApplication.clipboard().setText("just some words")
    assert not window.overlay_view.paste_image()
    text, error = window.messages[-1]
    assert error and "clipboard holds no image" in text and "text/plain" in text
    assert np.array_equal(window.state.session.image, before)


def test_drop_an_image_file(qtbot, window, tmp_path):
    picture = _picture(64, 40)
    path = tmp_path / "dropped.png"
    picture.save(path)
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(path))])
    _drop(qtbot, window, mime)
    assert np.array_equal(window.state.session.image, np.asarray(picture))
    assert window.state.session.image_name == "dropped.png"


def test_drop_raw_image_data_and_qt_image_data(qtbot, window):
    picture = _picture(50, 30)
    mime = QtCore.QMimeData()
    mime.setData("image/png", QtCore.QByteArray(_png_bytes(picture)))
    _drop(qtbot, window, mime)
    assert np.array_equal(window.state.session.image, np.asarray(picture))
    other = _picture(30, 50)
    mime = QtCore.QMimeData()
    mime.setImageData(_qimage(other))
    _drop(qtbot, window, mime)
    assert np.array_equal(window.state.session.image, np.asarray(other))


def test_bad_drops_give_clear_messages_and_change_nothing(qtbot, window, tmp_path):
    s = window.state
    before = s.session.image.copy()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cases = [
        (QtCore.QUrl.fromLocalFile(str(broken)), "broken.png"),
        (QtCore.QUrl.fromLocalFile(str(empty)), "empty (0 bytes)"),
        (QtCore.QUrl.fromLocalFile(str(tmp_path / "gone.png")), "does not exist"),
        (QtCore.QUrl("https://example.org/cat.png"), "not a local file"),
    ]
    for url, expected in cases:
        mime = QtCore.QMimeData()
        mime.setUrls([url])
        _drop(qtbot, window, mime)
        text, error = window.messages[-1]
        assert error and expected in text, text
        assert "Traceback" not in text
    mime = QtCore.QMimeData()
    mime.setData("image/png", QtCore.QByteArray(b"not a png at all"))
    _drop(qtbot, window, mime)
    text, error = window.messages[-1]
    assert error and "image/png data (16 bytes) that is not a readable image" in text
    assert np.array_equal(s.session.image, before) and s.session.image_name == "start"
    assert window.isVisible()

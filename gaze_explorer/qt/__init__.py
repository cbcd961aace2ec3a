"""Everything PySide6/pyqtgraph: the main window, one view per module, widgets and workers."""

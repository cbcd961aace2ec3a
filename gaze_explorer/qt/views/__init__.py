"""One view per module, each built from a Qt-free model that it subscribes to."""

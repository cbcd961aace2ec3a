"""The parts of the app's controller, one responsibility each; ``qt.controller.AppController``
composes them into the one object the main window talks to.

- ``worker_pool``: the running workers (start, forget when done, busy, cancel, join).
- ``session``: what the app works on: the loaded model, the image on screen, the session file
  (open a session, start a new one with a new image, the recorder, the status bar's model and
  "ready" text, the selection saved in the file).
- ``runs``: generation: start a baseline or steered run, stream its events into the session
  model, stop, switch the target live, "Compare conditions", rename a run.
- ``discovery``: run discovery in the app and store its result (state and session file).
"""

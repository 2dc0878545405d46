"""Bottom-layer helpers with no project dependencies: every other layer may import them.

- :mod:`.io`: the one atomic file writer (temp file beside the target, then ``os.replace``) and JSON on top of it;
- :mod:`.jsonable`: tensors / numpy values -> JSON-ready Python values;
- :mod:`.ranks`: this process's global rank as the launcher's environment tells it (no Lightning needed).
"""

"""tonic's ``ToFrame`` kernel (``tonic.functional.to_frame_numpy``) for the tests.

``import tonic`` runs tonic/__init__.py, which imports every dataset module and so needs
optional dependencies (importRosbag, h5py, librosa, ...) that tonic==1.7.0 installed with
``--no-deps`` lacks. The frame kernel itself needs only numpy: when the package import
fails it is loaded from its files under throw-away package stubs, which are removed again
so that nothing else sees them.
"""

import importlib
import importlib.util
import os
import sys
import types


def load_to_frame():
    """``to_frame_numpy`` and tonic's version, or ``(None, reason)``."""
    try:
        from tonic.functional import to_frame_numpy  # the full package, when it imports

        return to_frame_numpy, "tonic"
    except Exception:  # missing optional dependencies, or no tonic at all
        pass
    spec = importlib.util.find_spec("tonic")
    if spec is None or spec.origin is None:
        return None, "tonic is not installed"
    root = os.path.dirname(spec.origin)
    saved = {k: v for k, v in sys.modules.items() if k == "tonic" or k.startswith("tonic.")}
    try:
        for name, path in (("tonic", root), ("tonic.functional", os.path.join(root, "functional"))):
            stub = types.ModuleType(name)
            stub.__path__ = [path]
            sys.modules[name] = stub
        module = importlib.import_module("tonic.functional.to_frame")
        return module.to_frame_numpy, "tonic (functional.to_frame loaded alone)"
    except Exception as exc:
        return None, f"tonic's to_frame could not be loaded ({exc})"
    finally:
        for name in [k for k in sys.modules if k == "tonic" or k.startswith("tonic.")]:
            del sys.modules[name]
        sys.modules.update(saved)


_TO_FRAME, TONIC_SOURCE = load_to_frame()


def to_frame_numpy(*args, **kwargs):
    """tonic.functional.to_frame_numpy; skips the calling test when tonic is unavailable."""
    if _TO_FRAME is None:
        import pytest

        pytest.skip(TONIC_SOURCE)
    return _TO_FRAME(*args, **kwargs)

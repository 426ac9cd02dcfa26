"""mmring: ``multiprocessing``'s Queue, Pipe, Value, Array, Dict, Lock, Event,
Semaphore and Barrier over lock-free shared-memory files.

Every object lives in a file named at creation (a bare name goes under
``/dev/shm``, a path with a slash is used as given). ``Kind(name, ...)``
creates the file or opens the one already there with the same shape, and
never resets it; ``Kind.open(name)`` opens only. Objects pickle as their
path, so they can be handed to a ``multiprocessing.Process`` under any start
method, and each process registers itself on first use.
"""

from ._native import *  # noqa: F401,F403
from ._native import Error, ShutDown, WrongKindError, remove  # noqa: F401

import atexit as _atexit

from . import _native

# At exit: daemon threads blocked in a wait stay parked (instead of being
# torn down mid-call), and objects made without a name that may have
# reached another process have their files removed.
_atexit.register(_native._at_exit)

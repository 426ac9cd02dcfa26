"""Shared fixtures: a private directory per test (every file a test makes is
removed with it), and the multiprocessing start methods to run children under."""

import multiprocessing
import os
import shutil
import tempfile

import pytest


@pytest.fixture
def tmpdir_path():
    """A fresh directory, removed with everything in it after the test."""
    path = tempfile.mkdtemp(prefix="mmring-py-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def name(tmpdir_path):
    """Makes paths inside the test's directory: ``name("jobs")``."""
    return lambda stem="obj": os.path.join(tmpdir_path, stem)


@pytest.fixture(params=["fork", "spawn"])
def ctx(request):
    """A multiprocessing context for each start method the tests cover."""
    return multiprocessing.get_context(request.param)


def join_all(procs, timeout=60):
    """Joins every process and returns their exit codes (a hung child fails
    the test instead of hanging it: it is killed after ``timeout``)."""
    codes = []
    for p in procs:
        p.join(timeout)
        if p.is_alive():
            p.kill()
            p.join()
        codes.append(p.exitcode)
    return codes

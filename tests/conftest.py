"""Test-wide settings: a private feature/upstream cache so tests never read or fill the user's cache."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ticl-cache")
    old = os.environ.get("TICL_CACHE")
    os.environ["TICL_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("TICL_CACHE", None)
    else:
        os.environ["TICL_CACHE"] = old


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and stay fast when another process shares the cores
    (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

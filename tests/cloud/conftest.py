import pytest

from infra import constants as C
from pulumi_harness import write_stand_in_image_lock


@pytest.fixture(autouse=True, scope="module")
def locked_base_images(tmp_path_factory):
    """Deploys need pinned bases (`invoke lock-images`); here a stand-in lock provides them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "IMAGE_LOCK_FILE", write_stand_in_image_lock(tmp_path_factory.mktemp("lock") / "images.lock.yaml"))
        yield

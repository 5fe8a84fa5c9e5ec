import pytest

from infra import constants as C
from pulumi_harness import DOCKER_STACKS, STACKS, write_stand_in_image_lock


@pytest.fixture(autouse=True, scope="module")
def locked_base_images(tmp_path_factory):
    """Deploys need pinned bases (`invoke lock-images`); a stand-in lock provides them (a test that wants
    another lock patches C.IMAGE_LOCK_FILE itself)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "IMAGE_LOCK_FILE", write_stand_in_image_lock(tmp_path_factory.mktemp("lock") / "images.lock.yaml"))
        yield


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    """Every stack file in stacks/ (every target of the spec is implemented: test_deploy_bad_config checks it)."""
    return request.param


@pytest.fixture(params=DOCKER_STACKS)
def docker_stack(request) -> str:
    """Every stack file in stacks/ with the Docker host target."""
    return request.param

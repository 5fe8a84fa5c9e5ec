import pytest

from deploy_harness import DOCKER_STACKS, STACKS, implemented, target_of
from infra import constants as C
from infra.deploy.testing import write_stand_in_image_lock


@pytest.fixture(autouse=True, scope="module")
def locked_base_images(tmp_path_factory):
    """Deploys need pinned bases (`invoke lock-images`); a stand-in lock provides them (a test that wants
    another lock patches C.IMAGE_LOCK_FILE itself)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "IMAGE_LOCK_FILE", write_stand_in_image_lock(tmp_path_factory.mktemp("lock") / "images.lock.yaml"))
        yield


@pytest.fixture(params=STACKS)
def stack(request) -> str:
    """Every stack file in stacks/ whose target the program implements (others are skipped, naming it)."""
    if not implemented(request.param):
        pytest.skip(f"target {target_of(request.param)!r} is not registered in infra.deploy.targets.TARGETS")
    return request.param


@pytest.fixture(params=DOCKER_STACKS)
def docker_stack(request) -> str:
    """Every stack file in stacks/ with the Docker host target."""
    return request.param


@pytest.fixture(params=STACKS)
def any_stack(request) -> str:
    """Every stack file in stacks/, whatever its target."""
    return request.param

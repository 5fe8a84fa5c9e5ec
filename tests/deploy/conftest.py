import pytest

from deploy_harness import DOCKER_STACKS, STACKS, implemented, target_of


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

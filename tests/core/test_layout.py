"""The layout shows the architecture (issue 18, part 5): test code lives under tests/ and the product
never imports it; the image ships the flag allow-list, not the dev tooling around it."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Top-level names that are test or dev code, never something the product imports.
NOT_PRODUCT = {"tests", "pulumi_harness", "deploy_harness", "cloud_harness", "launcher_support", "devtools"}


def imported_tops(path: Path) -> set[str]:
    tops: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def test_the_product_imports_no_test_or_dev_code():
    found = {str(p.relative_to(ROOT)): sorted(imported_tops(p) & NOT_PRODUCT) for p in sorted((ROOT / "infra").rglob("*.py"))}
    assert {k: v for k, v in found.items() if v and not k.startswith("infra/tasks/")} == {}
    # the CLI's dev tasks (invoke check-flags) are the one place dev tooling is reached from, and only that
    assert {k: v for k, v in found.items() if v and k.startswith("infra/tasks/")} == {"infra/tasks/flags.py": ["devtools"]}


def test_the_pulumi_harness_is_test_code():
    assert not (ROOT / "infra" / "deploy" / "testing.py").exists()
    assert (ROOT / "tests" / "pulumi_harness.py").is_file()


@pytest.fixture(scope="module")
def image_context(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("gptoss_images_build_layout", ROOT / "images" / "build.py")
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build
    spec.loader.exec_module(build)
    return build.assemble_context(tmp_path_factory.mktemp("ctx") / "ctx", "vllm", tmp_path_factory.mktemp("enc"))


def test_the_image_ships_the_flag_allow_list_and_no_dev_tooling(image_context):
    """plan.py checks extra_args against the committed parser snapshots at plan time, in the image too:
    the snapshot module and its JSON ship; the venv builders and live probes do not."""
    flagcheck = image_context / "infra" / "flagcheck"
    shipped = sorted(str(p.relative_to(flagcheck)) for p in flagcheck.rglob("*") if p.is_file())
    assert [p for p in shipped if not p.startswith("snapshots/")] == ["__init__.py", "snapshot.py"], shipped
    assert any(p.endswith(".json") for p in shipped), shipped
    assert not (image_context / "devtools").exists() and not (image_context / "tests").exists()

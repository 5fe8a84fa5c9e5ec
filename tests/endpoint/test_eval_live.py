"""`invoke eval` end to end against the real vLLM (CPU) server: the tiny model answers the test
datasets (tests/endpoint/data, written for these tests: never real GPQA/AIME items) as their
``[[reply: ...]]`` markers script it (tests/vllm_cpu/eval_answers.py), so the right fraction is
known: GPQA 2 of 6, AIME 2 of 3. The gate's verdict then follows from the statistics alone."""

import json
import subprocess

import pytest

from infra.endpoint.evals import stats

from .conftest import REPO, TEST_API_KEY, stack_outputs
from .invoke_helpers import run_task

pytestmark = pytest.mark.slow

DATA = REPO / "tests" / "endpoint" / "data"
GPQA = str(DATA / "eval_gpqa.csv")


def test_gate_passes_where_the_panel_is_inside_the_interval(open_server, tmp_path, capsys):
    # 2 of 6: Wilson 95% 9.7%..70.0%; gpt-oss-20b low's panel value 56.8% lies inside: pass
    code, out, err = run_task(["eval", "--url", open_server.url, "--eval", "gpqa", "--effort", "low", "--api", "chat",
                               "--data", GPQA, "--examples", "6", "--out", str(tmp_path / "r")], capsys)
    assert code == 0, out + err
    assert "2/6 right = 33.3% (95% Wilson interval 9.7-70.0%), panel 56.8%: PASS" in out
    data = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert (data["model"], data["effort"], data["api"]) == (open_server.alias, "low", "chat")
    assert data["panel_model"] == "20b"
    assert data["engine"] == {"backend": "vllm", "version": "0.32.0"}
    assert data["target"]["stack"] is None and data["target"]["source"] == "url"
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert data["project"]["commit"] == head
    assert data["gate"]["verdict"] == "pass" and (data["gate"]["right"], data["gate"]["n"]) == (2, 6)
    items = data["items"]
    assert sorted(i["example"] for i in items) == [0, 1, 2, 3, 4, 5]
    # the model's letters: right exactly for the rows whose marker names the correct answer
    assert {i["example"] for i in items if i["right"]} == {0, 1}
    assert all(i["extracted"] in "ABCD" and i["reply_tail"] == f"**Answer: {i['extracted']}**" for i in items)
    assert (tmp_path / "r" / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gate_fails_where_the_panel_is_above_the_interval(keyed_server, fake_pulumi, tmp_path, capsys):
    # the same 2 of 6 at effort high: the panel's 70.9% is above the interval's 70.0%: the gate fails
    assert stats.wilson(2, 6)[1] < stats.PANEL["20b"]["gpqa"]["high"] / 100
    fake_pulumi("local", stack_outputs(keyed_server.url, keyed_server.alias, TEST_API_KEY))
    code, out, err = run_task(["eval", "--stack", "local", "--effort", "high", "--data", GPQA, "--examples", "6",
                               "--out", str(tmp_path / "r")], capsys)
    assert code == 1, out + err
    assert err.strip().splitlines()[-1] == "eval: score 33.3% is below the recipe's 70.9% (95% interval up to 70.0%)"
    data = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert data["api"] == "responses" and data["effort"] == "high" and data["gate"]["verdict"] == "fail"
    assert data["target"]["stack"] == "local" and data["target"]["gpu"] == "h100-80gb"
    assert TEST_API_KEY not in out + err + (tmp_path / "r" / "eval.json").read_text()


def test_aime_through_the_responses_api(open_server, tmp_path, capsys):
    # 2 of 3 right, asked twice each: 4 of 6 (Wilson 30.0%..90.3%) against 20b low's 38.8%
    code, out, err = run_task(["eval", "--url", open_server.url, "--eval", "aime25", "--repeats", "2",
                               "--data", str(DATA / "eval_aime.jsonl"), "--out", str(tmp_path / "r")], capsys)
    assert code == 0, out + err
    data = json.loads((tmp_path / "r" / "eval.json").read_text())
    assert (data["gate"]["right"], data["gate"]["n"], data["gate"]["verdict"]) == (4, 6, "pass")
    assert sorted((i["example"], i["extracted"], i["right"]) for i in data["items"]) == [
        (0, "204", True), (0, "204", True), (1, "70", True), (1, "70", True), (2, "13", False), (2, "13", False)]

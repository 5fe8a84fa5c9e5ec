"""`invoke eval` without a model server: the reference harness's grading rules, the sampling order,
the interval and the gate, dataset validation, and the download path against a real local HTTP server."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.endpoint.evals import data, grading, stats
from tests.vllm_cpu.eval_answers import final_answer

from .hostile import HostileServer
from .test_hostile_servers import MARGIN
from .invoke_helpers import run_task

DATA = Path(__file__).resolve().parent / "data"

# replies as gpt-oss writes them, and the letter the reference's abcd_grader.py reads from each
# (each checked against gpt_oss/evals/abcd_grader.py @7b58334 itself, run on the same text)
ABCD_CASES = [
    ("**Answer:** C", "C"),
    ("**answers:** b", "B"),                                # markdown-wrapped, case-insensitive
    ("*Answers* – B", "A"),   # the reference comments promise B; its rules read the A of "Answers" (rule [9])
    ("Reasoning...\nAnswer: D", "D"),
    ("The Answer: (B) because", "B"),
    ("I pick Option C.", "C"),
    ("so \\boxed{A}", "A"),
    ("\\boxed{\\text{B } 2.08\\times10^{-6}}", "B"),
    ("It must be (D).", "D"),
    ("clearly **C** here", "C"),
    ("\\textbf{A}", "A"),
    ("**B) the second one**", "B"),
    ("C. the third", "C"),
    ("Answer: Because x", "B"),   # a quirk of the reference ("Answer: B" from "Because"), kept on purpose
    ("answer: (A) and Answer: B", "A"),                     # rule priority, not position
    ("**Hmm", "H"),                                         # no rule: the first character after `**`
    ("", ""),
]


@pytest.mark.parametrize("text,letter", ABCD_CASES)
def test_abcd_extraction_follows_the_reference_rules(text, letter):
    assert grading.extract_abcd(text) == letter


@pytest.mark.parametrize("text,value", [
    ("so $\\boxed{204}$.", 204),
    ("\\boxed{1} then \\boxed{70}", 70),                  # the last boxed
    ("\\framebox{33}", 33),
    ("\\boxed{x, 12}", 12),                                # after the last comma
    ("\\boxed{\\frac{1}{2}}", None),                       # up to the first `}`: not an integer
    ("no box: 3 then 45 apples", 45),                      # the last digits
    ("\\boxed{} and 9", 9),                                # an empty box is skipped
    ("nothing", None),
])
def test_integer_extraction_follows_the_reference_rules(text, value):
    assert grading.extract_integer(text) == value


def test_items_use_the_reference_random_draws():
    # gpt_oss/evals/gpqa_eval.py: Random(0) samples the subset, the list is repeated, then one answer
    # order is drawn per item; the values are those steps of the reference run on 6 (and 4) rows
    items = grading.plan_items(6, 3, 2)
    assert [i.example for i in items] == [3, 5, 0, 3, 5, 0]
    assert [i.repeat for i in items] == [0, 0, 0, 1, 1, 1]
    assert [i.order for i in items] == [(2, 3, 1, 0), (2, 1, 3, 0), (1, 3, 0, 2), (2, 3, 0, 1), (0, 2, 3, 1),
                                        (3, 2, 0, 1)]
    whole = grading.plan_items(4, None, 1)
    assert [i.example for i in whole] == [0, 1, 2, 3] and whole[0].order == (3, 1, 0, 2)
    prompt, letter = grading.gpqa_prompt("Q?", ("right", "w1", "w2", "w3"), (3, 1, 2, 0))
    assert letter == "D" and "(A) w3\n(B) w1\n(C) w2\n(D) right\n\nExpress your final answer" in prompt


def test_wilson_interval_known_values():
    assert stats.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert stats.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert stats.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    with pytest.raises(ValueError):
        stats.wilson(1, 0)


def test_gate_on_both_sides_of_the_interval():
    # 2 of 6 right: Wilson 95% interval 9.7%..70.0%
    assert stats.gate(2, 6, 56.8)["verdict"] == "pass"   # 20b low: inside the interval
    assert stats.gate(2, 6, 70.9)["verdict"] == "fail"   # 20b high: just above it
    assert stats.gate(6, 6, 56.8)["verdict"] == "pass"   # the panel below the interval: better is no defect
    assert stats.gate(1, 6, 56.8)["verdict"] == "fail"   # 1 of 6: up to 56.4%
    assert stats.gate(2, 6, None)["verdict"] == "no-panel"


@pytest.mark.parametrize("model,size", [("openai/gpt-oss-120b", "120b"), ("gpt-oss-20b", "20b"),
                                        ("gpt-oss-20b-fp8", "20b"), ("my-1120b", None), ("llama", None)])
def test_panel_size_from_the_model_id(model, size):
    assert stats.panel_size(model) == size


def test_scripted_answers_of_the_test_model_grade_as_intended():
    prompt, letter = grading.gpqa_prompt("Q [[reply: w2]]", ("right", "w1", "w2", "w3"), (1, 2, 0, 3))
    rendered = f"<|start|>system<|message|>x<|end|><|start|>user<|message|>{prompt}<|end|><|start|>assistant"
    reply = final_answer(rendered)
    assert grading.extract_abcd(reply) == "B" != letter == "C"
    rendered = rendered.replace("[[reply: w2]]", "[[reply: right]]")
    assert grading.extract_abcd(final_answer(rendered)) == letter
    aime = f"<|start|>user<|message|>{grading.aime_prompt('Sum? [[reply: 070]]')}<|end|>"
    assert grading.extract_integer(final_answer(aime)) == 70
    assert final_answer("<|start|>user<|message|>hello<|end|>") is None


# ---- datasets ---------------------------------------------------------------------------------

GPQA_HEADER = "Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\n"


@pytest.mark.parametrize("name,text,words", [
    ("no-column.csv", "Question,Correct Answer\nq,a\n", "no column 'Incorrect Answer 1'"),
    ("empty-field.csv", GPQA_HEADER + "q1,a,b,c,d\nq2,a,,c,d\n", "row 2: `Incorrect Answer 1` is ''"),
    ("extra-field.csv", GPQA_HEADER + "q1,a,b,c,d,e\n", "row 1: 6 fields, the header has 5"),
    ("short-row.csv", GPQA_HEADER + "q1,a,b\n", "row 1: `Incorrect Answer 2` is missing"),
    ("no-rows.csv", GPQA_HEADER, "no rows"),
])
def test_malformed_gpqa_rows_are_one_line_errors(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(data.DataError) as err:
        data.load("gpqa", [path])
    msg = str(err.value)
    assert words in msg and "\n" not in msg and "fix:" in msg and str(path) in msg


@pytest.mark.parametrize("text,words", [
    ('{"question": "q", "answer": 3}\n{"question": "q2"\n', "line 2: not JSON"),
    ('["q", 3]\n', "line 1: a JSON list, expected an object"),
    ('{"question": "q", "answer": "seven"}\n', 'line 1: `answer` is "seven", expected an integer'),
    ('{"question": "q", "answer": true}\n', "line 1: `answer` is true, expected an integer"),
    ('{"question": "", "answer": 3}\n', "line 1: `question` is '', expected non-empty text"),
    ('{"question": "q\\u001b[2J", "answer": 3}\n{"question": 5, "answer": 3}\n', "line 2: `question` is '5'"),
])
def test_malformed_aime_rows_are_one_line_errors(tmp_path, text, words):
    path = tmp_path / "aime.jsonl"
    path.write_text(text)
    with pytest.raises(data.DataError) as err:
        data.load("aime25", [path])
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_test_datasets_load(tmp_path):
    gpqa, files = data.load("gpqa", [DATA / "eval_gpqa.csv"])
    assert len(gpqa) == 6 and gpqa[4].answers[0] == 'oak, "white"' and "\n" in gpqa[5].question
    assert files[0]["sha256"] == hashlib.sha256((DATA / "eval_gpqa.csv").read_bytes()).hexdigest()
    aime, _ = data.load("aime25", [DATA / "eval_aime.jsonl"])
    assert [e.answer for e in aime] == [204, 70, 31]


class _Files(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 serving one body at any path (``delay`` before it)."""

    def __init__(self, body: bytes, status: int = 200, delay: float = 0.0):
        self.body, self.status, self.delay, self.hits = body, status, delay, 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.hits += 1
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

        super().__init__(("127.0.0.1", 0), H)
        self.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server_address[1]}/simple-evals/gpqa_diamond.csv"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


def test_fetch_checks_sha256_and_caches(tmp_path):
    body = (DATA / "eval_gpqa.csv").read_bytes()
    with _Files(body) as srv:
        src = data.Source("gpqa_diamond.csv", srv.url, hashlib.sha256(body).hexdigest())
        path = data.fetch(src, tmp_path)
        assert path.read_bytes() == body and srv.hits == 1
        assert data.fetch(src, tmp_path) == path and srv.hits == 1   # cached: no second download
        assert len(data.load_gpqa(path)) == 6
        wrong = data.Source("other.csv", srv.url, "0" * 64)
        with pytest.raises(data.DataError, match="sha256 .* is not the expected 0000"):
            data.fetch(wrong, tmp_path)
        assert not (tmp_path / ("0" * 16) / "other.csv").exists()  # a file that failed the check is not kept


def test_fetch_failures_are_one_line_errors(tmp_path):
    with _Files(b"gone", status=404) as srv:
        with pytest.raises(data.DataError, match="HTTP 404 .*--data PATH"):
            data.fetch(data.Source("x.csv", srv.url, "0" * 64), tmp_path)
    with _Files(b"late", delay=3.0) as srv:
        t0 = time.monotonic()
        with pytest.raises(data.DataError, match="ReadTimeout: the dataset download took longer than its 1s"):
            data.fetch(data.Source("x.csv", srv.url, "0" * 64), tmp_path, timeout=1.0)
        assert time.monotonic() - t0 < 1 + MARGIN  # bounded by the 1 s timeout (MARGIN: a loaded 2-core box)


def test_the_real_sources_are_the_reference_harness_urls():
    urls = [s.url for s in data.SOURCES["gpqa"] + data.SOURCES["aime25"]]
    assert urls[0] == "https://openaipublic.blob.core.windows.net/simple-evals/gpqa_diamond.csv"
    assert all(u.startswith("https://huggingface.co/datasets/opencompass/AIME2025/raw/") for u in urls[1:])
    assert all(len(s.sha256) == 64 for s in data.SOURCES["gpqa"] + data.SOURCES["aime25"])


# ---- the task against misbehaving servers (tests/endpoint/hostile.py) and bad input ------------------

def _eval_against(mode: str, tmp_path: Path, capsys, *args: str) -> tuple[int, str, float]:
    """(exit code, stderr, seconds) of `invoke eval` on the test GPQA data against a hostile server."""
    with HostileServer(mode) as srv:
        t0 = time.monotonic()
        code, _out, err = run_task(["eval", "--url", srv.url, "--model", "m", "--panel", "20b", "--data",
                                    str(DATA / "eval_gpqa.csv"), "--out", str(tmp_path / "r"), *args], capsys)
        return code, err, time.monotonic() - t0


def test_a_server_that_never_finishes_is_a_one_line_error(capsys, tmp_path):
    code, err, took = _eval_against("endless_sse", tmp_path, capsys, "--api", "chat", "--examples", "2",
                                    "--request-timeout", "1", "--retries", "0")
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last == ("eval: 2 of 2 requests failed (first: ReadTimeout: the request took longer than its 1s "
                    "deadline)"), err
    assert took < 3 + MARGIN  # two engine-version probes and the requests (in parallel), each ended at 1 s


def test_the_run_deadline_ends_a_stuck_run(capsys, tmp_path):
    code, err, took = _eval_against("slow_drip", tmp_path, capsys, "--examples", "3", "--concurrency", "1",
                                    "--deadline", "3")
    assert code == 1 and took < 3 + MARGIN, err
    assert "eval run took longer than its 3s deadline" in err.strip().splitlines()[-1]
    items = json.loads((tmp_path / "r" / "eval.json").read_text())["items"]
    assert len(items) == 3 and all(i["error"] for i in items)


def test_malformed_data_through_the_task_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(GPQA_HEADER + "q1,a,b,c,d\nq2,a,b,c\n")
    code, out, err = run_task(["eval", "--url", "http://127.0.0.1:9", "--data", str(bad)], capsys)
    assert code == 2 and err.strip() == (f"eval: {bad} row 2: `Incorrect Answer 3` is missing, expected non-empty "
                                         "text (fix: correct that row; README 'Accuracy gate': datasets)")
    code, out, err = run_task(["eval", "--url", "http://127.0.0.1:9", "--examples", "0"], capsys)
    assert code == 2 and err.strip() == "--examples '0': expected a whole number 1..100000"


def test_a_model_id_without_a_panel_row_needs_panel(capsys):
    code, out, err = run_task(["eval", "--url", "http://127.0.0.1:9", "--model", "my-model",
                               "--data", str(DATA / "eval_gpqa.csv")], capsys)
    assert code == 2 and err.strip() == ("eval: cannot tell gpt-oss-20b from -120b by the model id 'my-model': "
                                         "pass --panel 20b or --panel 120b")


def test_the_plot_shows_the_latest_earlier_run_of_each_other_effort(tmp_path):

    from infra.endpoint.evals import run

    def report(effort, started, right, model="gpt-oss-20b", url="http://h/v1"):
        return {"model": model, "eval": "gpqa", "effort": effort, "started_at": started, "api": "chat",
                "panel_model": "20b", "panel": stats.PANEL["20b"]["gpqa"], "target": {"base_url": url},
                "gate": stats.gate(right, 6, stats.PANEL["20b"]["gpqa"][effort])}

    for name, rep in {"a": report("medium", "2026-01-01T00:00:00Z", 1),
                      "b": report("medium", "2026-01-02T00:00:00Z", 5),
                      "c": report("low", "2026-01-03T00:00:00Z", 2, model="gpt-oss-120b"),
                      "d": report("low", "2026-01-03T00:00:00Z", 3, url="http://other/v1")}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.json").write_text(json.dumps(rep))
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "eval.json").write_text("[1, 2]")  # not a report: ignored
    now = report("high", "2026-01-04T00:00:00Z", 2)
    earlier = run.earlier_runs(now, tmp_path)
    assert [(e["effort"], e["gate"]["right"]) for e in earlier] == [("medium", 5)]
    png = run.plot_eval(now, tmp_path / "eval.png", earlier)
    assert png.read_bytes()[:4] == b"\x89PNG"


class _Responses(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 answering POST /v1/responses with a fixed SSE body."""

    def __init__(self, events: list[str], status: int = 200):
        body = "".join(f"event: x\ndata: {e}\n\n" for e in events).encode()
        outer = self
        self.posted: list[bytes] = []

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                outer.posted.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), H)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


_MSG = '{"type": "message", "content": [{"type": "output_text", "text": "**Answer: C**"}]}'


@pytest.mark.parametrize("events,status,text,error", [
    (['{"type": "response.output_text.delta", "delta": "x"}',
      '{"type": "response.completed", "response": {"status": "completed", "usage": {"output_tokens": 9}, '
      f'"output": [{{"type": "reasoning", "content": []}}, {_MSG}]}}}}'], 200, "**Answer: C**", None),
    (['{"type": "response.failed", "response": {"error": {"message": "[/bold] engine died"}}}'], 200, "",
     "response.failed event: [/bold] engine died"),
    (['{"type": "response.output_text.delta", "delta": "B"}'], 200, "",
     "the stream ended without a well-formed response.completed event"),
    (['{"type": "response.completed", "response": {"output": "nope"}}'], 200, "",
     "the stream ended without a well-formed response.completed event"),
    (["{not json"], 200, "", "an event's `data` is not JSON: '{not json'"),
    (['{"error": {"message": "busy"}}'], 503, "", 'HTTP 503: event: x\\x0adata: {"error": {"message": "busy"}}'),
])
def test_responses_streams_are_read_or_refused_in_one_line(events, status, text, error):
    from infra.endpoint.client import EndpointClient
    from infra.endpoint.evals import run
    from infra.endpoint.target import resolve_target

    with _Responses(events, status) as srv:
        target = resolve_target(url=f"http://127.0.0.1:{srv.server_address[1]}", model="m")
        with EndpointClient(target, timeout=10) as client:
            ans = run.ask_responses(client, run._responses_body("m", "Q", run.EvalConfig(effort="medium")))
        sent = json.loads(srv.posted[0])
    assert (ans.text, ans.error) == (text, error)
    assert ans.retryable == (status == 503)
    assert sent == {"model": "m", "input": [{"role": "user", "content": "Q"}], "reasoning": {"effort": "medium"},
                    "temperature": 1.0, "stream": True}


@pytest.mark.parametrize("events, error", [
    # an error event whose `response` is not an object: this item fails, the run goes on
    (['{"type": "response.failed", "response": "boom"}'], "response.failed event: {'type': 'response.failed', 'response': 'boom'}"),
    # an event line the decoder drops for its size: named, not "no response.completed"
    (["{" + '"type": "response.completed", "pad": "' + "x" * (1 << 21) + '"}'], "an SSE line longer than"),
])
def test_odd_responses_events_fail_the_item_not_the_run(events, error):
    from infra.endpoint.client import EndpointClient
    from infra.endpoint.deadline import Deadline
    from infra.endpoint.evals import run
    from infra.endpoint.target import resolve_target

    with _Responses(events, 200) as srv:
        target = resolve_target(url=f"http://127.0.0.1:{srv.server_address[1]}", model="m")
        with EndpointClient(target, timeout=10) as client:
            body = run._responses_body("m", "Q", run.EvalConfig())
            ans, attempts = run.ask(client, "responses", body, retries=2, deadline=Deadline.after(30, "eval run"))
    assert not ans.text and error in ans.error and attempts == 1

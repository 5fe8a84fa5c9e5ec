"""The plan's predicted memory figures against one vLLM start-up log, with the launcher's own self-check
(infra/launcher/selfcheck.py, standard library only, loaded by path: the device has no project deps).

    python3 issue23_compare.py LOG FIT_JSON     (FIT_JSON: written by issue23_plans.py)

Prints the self-check table and, last, one JSON line of the logged figures.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

_SELFCHECK = Path(__file__).resolve().parents[2] / "infra" / "launcher" / "selfcheck.py"


def _selfcheck():
    spec = importlib.util.spec_from_file_location("gptoss_selfcheck", _SELFCHECK)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def compare(log_text: str, planned: dict) -> tuple[str, dict]:
    sc = _selfcheck()
    # fit.warm_start: the figures the self-check uses when vLLM loads its compile cache
    predicted = {k: planned["fit"][k] for k in (*sc.FIT_KEYS, sc.WARM_KEY) if k in planned["fit"]}
    predicted[sc.CONTEXT_KEY] = planned["settings"]["max_model_len"]
    check = sc.SelfCheck("vllm", predicted, sc.StartupLog("vllm"))
    for line in log_text.splitlines():
        check.feed(line)
    return check.report(), check.log.actual()


if __name__ == "__main__":
    report, actual = compare(Path(sys.argv[1]).read_text(errors="replace"), json.loads(Path(sys.argv[2]).read_text()))
    print(report)
    print(json.dumps(actual))

"""``invoke eval``: an accuracy gate against the vLLM gpt-oss recipe's panel (GPQA diamond, AIME25).

- :mod:`.grading`: the prompts and the answer-extraction rules of OpenAI's reference harness
  (``gpt_oss.evals`` in github.com/openai/gpt-oss), re-implemented here;
- :mod:`.data`: the datasets, fetched on first use from the harness's public sources, checked by
  sha256 and cached, or read from ``--data PATH`` in the same formats, validated row by row;
- :mod:`.stats`: the recipe's panel and the gate (a Wilson 95% interval over examples x repeats);
- :mod:`.run`: the requests (Responses or Chat Completions API, streamed), the report, JSON + PNG.
"""

"""The settings table (infra/settings.py) is the one statement of each engine setting: the spec's bounds,
the env-var map, the plan's settings and engine command, and the README reference all read it."""
import pydantic
import pytest
import yaml

from infra import envmap, plan, settings as S
from infra.engine_command import parse_options
from infra.envmap import EnvError, parse_env
from infra.flagcheck.snapshot import load_snapshot
from infra.spec import StackSpec, load_spec
from infra.spec_reference import settings_rows


def _options(row, backend):
    """Every option the table writes for `row` on `backend`."""
    form = row.form(backend)
    toks = list(form.false) + ([form.option] if form.option else [])
    if form.expand is not None:
        toks += form.expand({"model": "m", "num_speculative_tokens": 3})
    return [o.name for o in parse_options(toks)[1]]


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_every_option_the_table_writes_is_in_the_engines_parser(backend):
    known = load_snapshot(backend)["options"]
    for row in S.TABLE:
        if row.form(backend) is not None:
            for name in _options(row, backend):
                assert name in known, (row.name, name)


def test_layouts_name_only_rows_each_engine_is_told():
    for backend, layout in S.LAYOUT.items():
        assert len(set(layout)) == len(layout)
        assert set(layout) == {r.name for r in S.TABLE if r.form(backend) is not None}, backend


def test_consumers_read_the_table():
    assert plan.SETTINGS == S.plan_settings() and envmap.SPEC_FIELDS == S.spec_fields()
    assert [(v, s, b) for v, s, _, b in envmap.ENV_VARS] == [(v, r.name, b) for r in S.TABLE for v, b in r.env]
    for row in S.TABLE:
        if row.stack_key and row.plan or row.name == "port":  # the fields whose type the table gives
            field = StackSpec.model_fields[row.name]
            shown = {k: getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le") if hasattr(m, k)}
            assert shown == row.bounds, row.name
        if row.stack_key:
            assert row.name in StackSpec.model_fields


def test_false_is_written_the_way_each_engine_reads_it():
    values = {"enable_prefix_caching": False, "async_scheduling": False, "enable_chunked_prefill": False,
              "max_num_batched_tokens": 2048, "kv_cache_dtype": "fp8"}
    _, cfg, cli = S.vllm_command(values)
    assert False not in cfg.values()  # vLLM silently drops `key: false` from a --config file
    assert cli == ["--no-enable-prefix-caching", "--no-enable-chunked-prefill", "--no-async-scheduling"]
    assert cfg["kv-cache-dtype"] == "fp8"
    sg = S.sglang_options(values)
    assert sg == ["--chunked-prefill-size", "-1", "--kv-cache-dtype", "fp8_e4m3", "--disable-radix-cache",
                  "--disable-overlap-schedule"]
    assert S.sglang_options({"kv_cache_dtype": "auto", "enable_prefix_caching": True}) == []


def test_a_new_row_shows_up_in_every_consumer():
    row = S.Setting("decode_log_interval", int, "Decode steps between SGLang's progress lines.", ge=1, le=1000,
                    env=(("DECODE_LOG_INTERVAL", ("sglang",)),), stack_key=True, sglang=S.Form("--decode-log-interval"))
    flag = S.Setting("enable_log_requests", bool, "Log each request.", env=(("ENABLE_LOG_REQUESTS", ("vllm",)),),
                     vllm=S.Form("--enable-log-requests", false=("--no-enable-log-requests",)))
    table = (*S.TABLE, row, flag)
    # the plan's settings and the env vars that change the spec
    assert S.plan_settings(table)[-2:] == ("decode_log_interval", "enable_log_requests")
    assert "decode_log_interval" in S.spec_fields(table) and "enable_log_requests" not in S.spec_fields(table)
    # the env map: names, engines and bounds
    variables = envmap.env_vars(table)
    assert parse_env({"DECODE_LOG_INTERVAL": "40"}, "sglang", variables).values == {"decode_log_interval": 40}
    with pytest.raises(EnvError, match="DECODE_LOG_INTERVAL='0': expected 1..1000"):
        parse_env({"DECODE_LOG_INTERVAL": "0"}, "sglang", variables)
    assert "ignored by vllm" in parse_env({"DECODE_LOG_INTERVAL": "40"}, "vllm", variables).warnings[0]
    assert parse_env({"ENABLE_LOG_REQUESTS": "off"}, "vllm", variables).values == {"enable_log_requests": False}
    # the spec field's type and bounds
    model = pydantic.create_model("M", decode_log_interval=(S.spec_type("decode_log_interval", table), None))
    assert model(decode_log_interval=40).decode_log_interval == 40
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 1000"):
        model(decode_log_interval=1001)
    # the engine commands, false forms included
    values = {"decode_log_interval": 40, "enable_log_requests": False}
    assert S.sglang_options(values, table) == ["--decode-log-interval", "40"]
    assert S.vllm_command(values, table) == ([], {}, ["--no-enable-log-requests"])
    assert S.vllm_command({"enable_log_requests": True}, table)[1] == {"enable-log-requests": True}
    # the README reference
    rows = "\n".join(settings_rows(table))
    assert "| `decode_log_interval` | yes | `DECODE_LOG_INTERVAL` (SGLang) | not set | `--decode-log-interval` |" in rows
    assert "false: `--no-enable-log-requests`" in rows


def test_env_and_stack_bounds_are_the_same_numbers():
    for name, var, bad in (("max_num_batched_tokens", "MAX_NUM_BATCHED_TOKENS", 2 ** 20 + 1),
                           ("max_num_seqs", "MAX_NUM_SEQS", 4097), ("gpu_memory_fraction", "GPU_MEMORY_UTILIZATION", 0.99)):
        with pytest.raises(EnvError, match=var):
            parse_env({var: str(bad)}, "vllm")
        with pytest.raises(ValueError, match=name):
            load_spec({"backend": "vllm", "gpu": "h100-80gb", name: bad}, stack="s")


def test_the_plan_writes_what_the_table_says():
    p = plan.build_plan(load_spec({"backend": "vllm", "gpu": "h100-80gb", "max_num_seqs": 7,
                                   "enable_chunked_prefill": False, "max_num_batched_tokens": 131072}, stack="s"))
    cfg = yaml.safe_load(p.files["vllm.yaml"])
    assert cfg["max-num-seqs"] == 7 and "enable-chunked-prefill" not in cfg and "--no-enable-chunked-prefill" in p.argv

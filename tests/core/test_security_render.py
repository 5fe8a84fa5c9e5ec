"""Issue 11 item 1: no stack field can inject into the rendered docker-run.sh.

The property: for any stack the spec and renderer accept, `bash -n` passes, running the script with a
fake `docker` first on PATH hands it exactly the words `docker_run_lines` planned (nothing more, nothing
split, nothing expanded), and the argv comment line reads back as the plan's argv. Stacks the spec
refuses fail with one SpecError line. Hostile values come from the attack run's classes (newlines,
$(...), backticks, quotes, option-like words, `-v /:/host` smuggled into an address).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.plan import build_plan
from infra.render import docker_run_lines, render_plan_files
from infra.spec import SpecError, load_spec

HOSTILE = [
    "$(touch pwned)", "`touch pwned`", "a\ntouch pwned", "x'; touch pwned; '", 'x"; touch pwned; "', "\\", "'",
    "-oProxyCommand=touch pwned", "--help", "127.0.0.1:1:1 -v /:/host", "/", "a b", "${IFS}", "*", "~root",
    "a\rb", "a\x00b", "a\x1b[31mb", "a\u2028b", "$HOME", "!!", "#", "a;b", "a|b", "&", "é", "ghcr.io/acme",
    "user:token@ghcr.io/org", "ssh://root:pw@host", "0.0.0.0", "::1", "gptoss-cache", "MY_VAR", "1BAD",
]
BASE = {"backend": "vllm", "model": "openai/gpt-oss-20b", "gpu": "auto", "target": "docker",
        "image": {"push": False, "allow_unpinned_base": True}}
ANY_TEXT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12))


def word(valid: str) -> st.SearchStrategy[str]:
    """Mostly well-formed for the field (so many stacks are accepted), often hostile."""
    ok = st.from_regex(valid, fullmatch=True)
    return st.one_of(ok, ok, ok, ANY_TEXT)


NAME = word(r"[a-z0-9][a-z0-9._-]{1,12}")
FIELDS = {
    ("served_model_name",): st.one_of(NAME, ANY_TEXT.filter(lambda t: not t.startswith("-"))),
    ("host",): st.one_of(st.sampled_from(["0.0.0.0", "127.0.0.1", "::", "gpu-box"]), ANY_TEXT),
    ("docker", "container_name"): NAME,
    ("docker", "cache_volume"): NAME,
    ("docker", "publish_address"): st.one_of(st.sampled_from(["127.0.0.1", "0.0.0.0", "::1", "10.0.0.7"]), ANY_TEXT),
    ("docker", "host"): st.one_of(st.sampled_from(["unix:///var/run/docker.sock", "ssh://ops@gpu-box:2222",
                                                   "tcp://10.0.0.7:2376"]), ANY_TEXT),
    ("image", "registry"): st.one_of(st.sampled_from(["ghcr.io/acme", "localhost:5000"]), ANY_TEXT),
    ("image", "repository"): word(r"[a-z0-9]+(/[a-z0-9]+)?"),
    ("image", "tag"): word(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}"),
}


@st.composite
def stack_configs(draw) -> dict:
    cfg = {**BASE, "docker": {}, "image": dict(BASE["image"])}
    for where in draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=4)):
        target = cfg if len(where) == 1 else cfg[where[0]]
        target[where[-1]] = draw(FIELDS[where])
    if draw(st.booleans()):
        cfg["docker"]["device_ids"] = draw(st.lists(word(r"[0-9]|GPU-[0-9a-f-]{8}"), min_size=1, max_size=2))
    if draw(st.booleans()):
        cfg["env"] = draw(st.dictionaries(word(r"[A-Z_][A-Z0-9_]{0,8}"), ANY_TEXT, max_size=3))
    if draw(st.booleans()):
        cfg["extra_args"] = ["--max-log-len", draw(ANY_TEXT)]
    return cfg


@pytest.fixture(scope="module")
def fake_docker(tmp_path_factory) -> Path:
    """A PATH dir whose `docker` writes the words it was given, NUL-separated, to $ARGV_OUT."""
    d = tmp_path_factory.mktemp("fakebin")
    exe = d / "docker"
    exe.write_text('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$ARGV_OUT"\n')
    exe.chmod(0o755)
    return d


def run_script(script: str, workdir: Path, fake_docker: Path) -> list[str]:
    path = workdir / "docker-run.sh"
    path.write_text(script)
    subprocess.run(["bash", "-n", str(path)], check=True)
    out = workdir / "argv.bin"
    env = {"PATH": f"{fake_docker}{os.pathsep}/usr/bin{os.pathsep}/bin", "ARGV_OUT": str(out), "API_KEY": "k"}
    subprocess.run(["bash", str(path)], cwd=workdir, env=env, check=True, timeout=10)
    assert not (workdir / "pwned").exists(), "a stack field ran a command"
    return out.read_bytes().decode().split("\0")[:-1]


def comment_argv(script: str, workdir: Path) -> list[str]:
    """The `#   argv...` comment line, read back by bash itself."""
    line = next(ln for ln in script.splitlines() if ln.startswith("#   "))
    r = subprocess.run(["bash", "-c", f"set -- {line[4:]}; printf '%s\\0' \"$@\""], cwd=workdir,
                       capture_output=True, check=True)
    return r.stdout.decode().split("\0")[:-1]


def check_stack(cfg: dict, workdir: Path, fake_docker: Path) -> bool:
    """True when accepted (and then proven safe); False when refused with one clean line."""
    try:
        spec = load_spec(cfg, stack="prop")
        plan = build_plan(spec)
    except SpecError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 1000
        return False
    script = render_plan_files(spec, plan)["docker-run.sh"]
    assert run_script(script, workdir, fake_docker) == [w for line in docker_run_lines(spec, plan) for w in line]
    assert comment_argv(script, workdir) == plan.argv
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=stack_configs())
def test_any_accepted_stack_gives_docker_exactly_the_planned_words(cfg, tmp_path_factory, fake_docker):
    check_stack(cfg, tmp_path_factory.mktemp("run"), fake_docker)


def test_hostile_but_legal_values_reach_docker_literally(tmp_path, fake_docker):
    """Values a stack may legally hold (env values, an engine option's value) are passed as one word each."""
    cfg = {**BASE, "env": {"NOTE": "$(touch pwned) `touch pwned` 'q' \"d\" ; | & *"},
           "extra_args": ["--max-log-len", "$(touch pwned)"], "served_model_name": "acme/gpt-oss:120b@v1+x"}
    assert check_stack(cfg, tmp_path, fake_docker)
    words = run_script(render_plan_files(load_spec(cfg), build_plan(load_spec(cfg)))["docker-run.sh"], tmp_path, fake_docker)
    assert "NOTE=$(touch pwned) `touch pwned` 'q' \"d\" ; | & *" in words


@pytest.mark.parametrize("section, key, value, words", [
    (None, "served_model_name", "m\ntouch pwned", ["control character '\\n'"]),
    (None, "served_model_name", "my model's $(name)", ["not a model name"]),
    (None, "host", "0.0.0.0 -v /:/host", ["IP address or host name"]),
    ("docker", "publish_address", "127.0.0.1:1:1 -v /:/host", ["IP address only"]),
    ("docker", "container_name", "x$(touch pwned)", ["container name"]),
    ("docker", "container_name", "--help", ["container name"]),
    ("docker", "cache_volume", "/", ["host path", "gptoss-cache"]),
    ("docker", "cache_volume", "v:/host", ["volume name"]),
    ("docker", "device_ids", ["0,1"], ["GPU index or UUID"]),
    ("image", "registry", "ghcr.io/$(touch pwned)", ["registry address"]),
    ("image", "tag", "1`touch pwned`", ["image tag"]),
    ("image", "repository", "Bad Repo", ["image repository"]),
    ("image", "base_image", "vllm/vllm-openai:v1 --privileged", ["image base image"]),
    ("env", "BAD NAME", "x", ["environment variable name"]),
    ("env", "NOTE", "a\nb", ["control character"]),
])
def test_each_injection_class_is_refused_where_the_spec_is_read(section, key, value, words):
    cfg = {**BASE, "image": dict(BASE["image"])}
    if section is None:
        cfg[key] = value
    else:
        cfg.setdefault(section, {})
        cfg[section] = {**cfg[section], key: value}
    with pytest.raises(SpecError) as exc:
        load_spec(cfg, stack="bad")
    message = str(exc.value)
    assert "\n" not in message and "Fix:" in message
    for word in words:
        assert word in message


def test_a_control_character_cannot_break_a_comment_line_even_past_the_spec():
    """Defence in depth: the renderer's quoting keeps each word on its line whatever it is given."""
    from infra.render import sh_quote

    for text in ("a\nb", "x\r\x1b$(id)", "it's\n"):
        q = sh_quote(text)
        assert "\n" not in q and "\r" not in q
        assert subprocess.run(["bash", "-c", f"printf %s {q}"], capture_output=True).stdout == text.encode()

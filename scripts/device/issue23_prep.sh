#!/usr/bin/env bash
# Issue 23, step 0, HERE (no GPU, PyPI reachable): everything scripts/device/issue23.sh needs on the
# device, under .dev23/ (git-ignored through info/exclude; the device tool carries it by name).
#   bash scripts/device/issue23_prep.sh          (~2 min: 357 MiB of wheels; reruns reuse what is there)
# Then it prints the device calls to make, in order (scripts/device/README.md).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
D=.dev23 PY=.venv/bin/python
EXCLUDE="$(git rev-parse --git-common-dir)/info/exclude"
grep -qx '/.dev23/' "$EXCLUDE" 2>/dev/null || echo '/.dev23/' >> "$EXCLUDE"
mkdir -p "$D/w" "$D/model" "$D/plans" "$D/scripts"

echo "== 1. vLLM 0.26.0 wheels for the device's Python 3.12 (torch 2.11 there; 0.26.0 is the newest vLLM that pins it)"
if ! ls "$D"/part* >/dev/null 2>&1; then
  timeout 900 python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_31_x86_64 --platform manylinux_2_24_x86_64 \
    --platform any -d "$D/w" -r scripts/device/wheels-vllm-0.26.0.txt
  tar cf "$D/all.tar" -C "$D/w" . && split -b 54M -d "$D/all.tar" "$D/part" && rm -f "$D/all.tar"
fi
ls -la "$D"/part* | awk '{print "   ", $5, $9}'

echo "== 2. model files: gpt-oss-120b's config (and 20b's, derived), the real o200k+harmony tokenizer, encodings"
"$PY" - "$D/model" <<'PYEOF'
import gzip, json, shutil, sys
from pathlib import Path
from tests.vllm_cpu import server, venv as vv
out = Path(sys.argv[1])
cfg = json.loads(Path("scripts/device/gpt-oss-120b-config.json").read_text()); cfg.pop("_origin")
(out / "config-120b.json").write_text(json.dumps(cfg, indent=1))
small = dict(cfg, num_hidden_layers=24, num_local_experts=32, layer_types=cfg["layer_types"][:24])
(out / "config-20b.json").write_text(json.dumps(small, indent=1))  # gpt-oss-20b: 24 layers, 32 experts
venv = vv.ensure_vllm_cpu()
snap = next((server.ensure_model(venv) / "huggingface" / "hub" / "models--openai--gpt-oss-20b" / "snapshots").iterdir())
for name in ("tokenizer_config.json", "generation_config.json"):
    shutil.copy(snap / name, out / name)
for src, dst in ((snap / "tokenizer.json", "tokenizer.json.gz"),
                 *((vv.encodings_dir(venv) / f"{e}.tiktoken", f"{e}.tiktoken.gz") for e in ("o200k_base", "cl100k_base"))):
    with open(src, "rb") as f, gzip.open(out / dst, "wb") as g:
        shutil.copyfileobj(f, g)
print("   ", sorted(p.name for p in out.iterdir()))
PYEOF

echo "== 3. the plans, rendered by the project for both cards (predicted figures beside each)"
"$PY" scripts/device/issue23_plans.py "$D/plans"

echo "== 4. the stack's cache volume layout (infra/constants.py CACHE_ENV), rooted at /tmp/gcache on the device"
"$PY" -c "
from infra import constants as C
print(''.join(f'export {k}={v.replace(C.CACHE_ROOT, \"/tmp/gcache\", 1)}\n' for k, v in sorted(C.CACHE_ENV.items())), end='')
" > "$D/cache.env"
cat "$D/cache.env"
du -sh "$D/model" "$D/plans"
parts=$(ls "$D"/part* | xargs -n1 basename | tr '\n' ' ')
echo
echo "== device calls, in order (README.md beside this script); the model files ride with the smallest (last) part"
last=$(ls "$D"/part* | tail -1 | xargs basename)
for p in $parts; do
  if [ "$p" = "$last" ]; then
    echo "   run carry=[\"$D/$p\", \"$D/model\", \"$D/plans\", \"$D/cache.env\"]  command: bash scripts/device/issue23.sh stage"
  else
    echo "   run carry=[\"$D/$p\"]  command: bash scripts/device/issue23.sh stage"
  fi
done
echo "   run command: bash scripts/device/issue23.sh cold      (then warm, plans, profiles, loadformats)"

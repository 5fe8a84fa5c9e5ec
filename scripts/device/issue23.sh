#!/usr/bin/env bash
# Issue 23 on the lent GPU machine (an H100 first; an H200 runs the same with its own plans).
# Written on a CPU-only day, not yet run: scripts/device/README.md gives the calls, their order and budget.
#   bash scripts/device/issue23.sh stage                 each carried .dev23 chunk -> /tmp (one call per chunk)
#   bash scripts/device/issue23.sh cold                  install vLLM 0.26, EMPTY caches, start the card's plan
#                                                        unchanged, phases + memory vs the plan, 64 users 1,024/512
#   bash scripts/device/issue23.sh warm                  the same plan twice more on the kept caches
#   bash scripts/device/issue23.sh variant NAME ARGS...  a warm-start candidate: two starts with extra vllm args
#                                                        (the 1st fills its caches, the 2nd is timed) + 64 users
#   bash scripts/device/issue23.sh plans                 the 32,768 K8s-style plan and the throughput plan
#   bash scripts/device/issue23.sh profiles PLAN         PLAN (plan|throughput) at 64, 128, 256 users
#   bash scripts/device/issue23.sh loadformats           gpt-oss-20b-shaped random safetensors on this disk,
#                                                        weight-load time per load format
#   bash scripts/device/issue23.sh stop
# Every phase leaves $OUT/issue23-PHASE.tar.gz (logs, phases.jsonl, self-check tables, bench JSON) and
# prints its summary last. Files under /tmp survive between calls while the machine stays warm.
set -u
PHASE=${1:?usage: issue23.sh stage|cold|warm|variant|plans|profiles|loadformats|stop}; shift
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/out}; W=/tmp/i23; R=$W/results/$PHASE; mkdir -p "$OUT" "$R"
SUMMARY=$R/summary.txt; : > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

if [ "$PHASE" = stage ]; then
  mkdir -p /tmp/stash && cp .dev23/part* /tmp/stash/ 2>/dev/null
  [ -d .dev23/model ] && mkdir -p /tmp/modelfiles && cp -r .dev23/model/. /tmp/modelfiles/
  [ -d .dev23/plans ] && mkdir -p /tmp/plans && cp -r .dev23/plans/. /tmp/plans/
  [ -f .dev23/cache.env ] && cp .dev23/cache.env $W/cache.env
  ls -la /tmp/stash | tail -n +2 | awk '{print $5, $9}'; du -sh /tmp/stash; ls /tmp/plans 2>/dev/null | wc -l
  df -h /tmp | tail -1; exit 0
fi

# ---- the engine and its environment (the same for every start: vLLM's compile cache key hashes VLLM_* env)
case "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" in
  *H100*) CARD=h100 ;; *H200*) CARD=h200 ;; *) echo "not an H100/H200: $(nvidia-smi -L)"; exit 2 ;;
esac
if [ ! -d /tmp/site/vllm ]; then
  t0=$(date +%s)
  cat /tmp/stash/part* > /tmp/all.tar && mkdir -p /tmp/w && tar xf /tmp/all.tar -C /tmp/w && rm -f /tmp/all.tar
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/w/*.whl 2>&1 | grep -v WARNING | tail -3
  say "install_s=$(( $(date +%s) - t0 ))"
fi
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH HF_HUB_OFFLINE=1 TIKTOKEN_ENCODINGS_BASE=/tmp/tiktoken PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# shellcheck disable=SC1091
. $W/cache.env   # the stack's cache volume layout (infra/constants.py CACHE_ENV) under /tmp/gcache
F=/tmp/modelfiles
model_dir() {  # model_dir DIR SIZE: config + tokenizer (weights: dummy, or the random checkpoint)
  mkdir -p /tmp/tiktoken "$1"
  [ -f /tmp/tiktoken/o200k_base.tiktoken ] || for e in o200k_base cl100k_base; do gunzip -c $F/$e.tiktoken.gz > /tmp/tiktoken/$e.tiktoken; done
  [ -f "$1/config.json" ] || cp $F/config-$2.json "$1/config.json"
  cp $F/tokenizer_config.json $F/generation_config.json "$1/"
  [ -f "$1/tokenizer.json" ] || gunzip -c $F/tokenizer.json.gz > "$1/tokenizer.json"
}
model_dir /tmp/m120b 120b

stop_server() {
  if [ -f $W/serve.pid ] && kill -0 "$(cat $W/serve.pid)" 2>/dev/null; then
    kill -- -"$(cat $W/serve.pid)" 2>/dev/null || kill "$(cat $W/serve.pid)"
    for _ in $(seq 30); do kill -0 "$(cat $W/serve.pid)" 2>/dev/null || break; sleep 1; done
  fi
  rm -f $W/serve.pid
}

start() {  # start TAG PLAN WAIT_S [extra vllm args]: one timed start, compared with the plan
  local tag=$1 plan=$2 wait=$3; shift 3
  local log=$R/vllm-0.26-$CARD-120b-$tag.log t0 ready=no
  stop_server
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader | sed "s/^/$tag gpu before: /" >> "$SUMMARY"
  t0=$(date +%s)
  # shellcheck disable=SC2046
  setsid nohup python3 -m vllm.entrypoints.cli.main serve /tmp/m120b --load-format dummy \
    --config /tmp/plans/$CARD-$plan.yaml $(cat /tmp/plans/$CARD-$plan.args) "$@" > "$log" 2>&1 < /dev/null &
  echo $! > $W/serve.pid
  while [ $(( $(date +%s) - t0 )) -lt "$wait" ]; do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)" 2>/dev/null; then
      ready=yes; break
    fi
    kill -0 "$(cat $W/serve.pid)" 2>/dev/null || { say "$tag: server exited"; break; }
    sleep 1
  done
  local ready_s=$(( $(date +%s) - t0 ))
  say "$tag ($CARD-$plan $*): ready=$ready after ${ready_s} s (launch to /health, 1 s polls)"
  python3 "$HERE/vllm_phases.py" "$log" | TAG=$tag PLAN=$CARD-$plan ARGS="$*" READY=$ready READY_S=$ready_s python3 -c '
import json, os, sys
d = json.loads(sys.stdin.read())
d.update(tag=os.environ["TAG"], plan=os.environ["PLAN"], args=os.environ["ARGS"], ready=os.environ["READY"] == "yes",
         ready_s=int(os.environ["READY_S"]))
print(json.dumps(d))' | tee -a $W/results/phases.jsonl >> "$SUMMARY"
  python3 "$HERE/issue23_compare.py" "$log" /tmp/plans/$CARD-$plan.fit.json > "$R/$tag.selfcheck.txt" 2>&1
  head -n -1 "$R/$tag.selfcheck.txt" >> "$SUMMARY"
  grep -aE "Error|error|Traceback|out of memory|OOM" "$log" | grep -v "error_" | head -5 | sed "s/^/$tag log: /" >> "$SUMMARY"
  [ $ready = yes ]
}

bench() {  # bench TAG "CONCURRENCIES" IN OUT PROMPTS_PER_USER: vllm bench serve against the running server
  local tag=$1 cs=$2 in=$3 ol=$4 np=$5 c n
  for c in $cs; do
    n=$(( np * c )); [ $n -lt 8 ] && n=8
    timeout 300 python3 -m vllm.entrypoints.cli.main bench serve --backend openai-chat --endpoint /v1/chat/completions \
      --base-url http://127.0.0.1:8000 --model openai/gpt-oss-120b --tokenizer /tmp/m120b --dataset-name random \
      --random-input-len "$in" --random-output-len "$ol" --num-prompts $n --max-concurrency "$c" --ignore-eos \
      --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,90,99 --save-result --result-dir "$R" \
      --result-filename "bench-$CARD-$tag-c$c.json" > "$R/bench-$tag-c$c.txt" 2>&1
    grep -aE "Successful|Failed|Output token throughput|Median TTFT|Median TPOT" "$R/bench-$tag-c$c.txt" | sed "s/^/$tag c=$c: /" >> "$SUMMARY"
  done
  local log; log=$(ls -t "$R"/vllm-0.26-*.log 2>/dev/null | head -1)
  [ -n "$log" ] && say "$tag: preemptions/OOM lines in the engine log: $(grep -acE 'preempt|out of memory|OOM' "$log")"
}

finish() {
  stop_server
  tar czf "$OUT/issue23-$PHASE.tar.gz" -C $W/results . 2>/dev/null
  echo "======== summary ($PHASE on $CARD)"; cat "$SUMMARY"
}

case "$PHASE" in
  cold)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$SUMMARY"
    python3 -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)" 2>&1 | tail -1 | tee -a "$SUMMARY"
    rm -rf /tmp/gcache   # cold: nothing cached (Triton, FlashInfer, inductor, vLLM's compile and AOT caches)
    start plan-cold plan 480 && bench plan-cold 64 1024 512 2
    du -sh /tmp/gcache/* 2>/dev/null | sed 's/^/cache volume after a cold start: /' >> "$SUMMARY"
    finish ;;
  warm)
    for i in 1 2; do start plan-warm$i plan 400; done
    du -sh /tmp/gcache/* 2>/dev/null | sed 's/^/cache volume: /' >> "$SUMMARY"
    finish ;;
  variant)
    name=${1:?variant NAME [vllm args...]}; shift
    start "$name-fill" plan 480 "$@"; start "$name" plan 400 "$@" && bench "$name" 64 1024 512 2
    finish ;;
  plans)
    start k8s32k k8s32k 420; start throughput throughput 420
    finish ;;
  profiles)
    plan=${1:?profiles plan|throughput}
    start "profile-$plan" "$plan" 420 && bench "profile-$plan" "64 128 256" 1024 512 2
    finish ;;
  loadformats)
    CK=/tmp/ckpt20b
    if [ ! -f $CK/model.safetensors.index.json ]; then
      t0=$(date +%s)
      python3 "$HERE/gptoss_random_checkpoint.py" $F/config-20b.json $CK | tee -a "$SUMMARY"
      say "checkpoint written in $(( $(date +%s) - t0 )) s"; sync
    fi
    model_dir $CK 20b
    for fmt in safetensors fastsafetensors instanttensor runai_streamer; do
      mod=$(case $fmt in fastsafetensors) echo fastsafetensors;; instanttensor) echo instanttensor;; runai_streamer) echo runai_model_streamer;; *) echo safetensors;; esac)
      python3 -c "import $mod" 2>/dev/null || { say "$fmt: skipped (python package $mod not carried)"; continue; }
      stop_server
      if sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then cache=dropped; else cache="NOT dropped (reads may hit RAM)"; fi
      log=$R/load-$fmt.log; t0=$(date +%s)
      setsid nohup python3 -m vllm.entrypoints.cli.main serve $CK --load-format $fmt --max-model-len 4096 \
        --gpu-memory-utilization 0.5 --enforce-eager > "$log" 2>&1 < /dev/null &
      echo $! > $W/serve.pid
      while [ $(( $(date +%s) - t0 )) -lt 300 ] && kill -0 "$(cat $W/serve.pid)" 2>/dev/null; do
        grep -aq "Model loading took" "$log" && break; sleep 1
      done
      say "$fmt (page cache $cache): $(grep -aoE 'Model loading took [0-9.]+ GiB memory and [0-9.]+ seconds' "$log" || echo "no load line: $(grep -aE 'Error|error' "$log" | tail -1 | cut -c1-200)")"
    done
    finish ;;
  stop) stop_server; echo stopped ;;
  *) echo "unknown phase $PHASE"; exit 2 ;;
esac

#!/usr/bin/env bash
# The GPU measurements of bench/RESULTS.md in one command, for a machine where sftc is set up and
# Dawn finds the GPU (`node scripts/probe-gpu.js` names it):
#
#   bash bench/gpu-run.sh OUTDIR [PART...]
#
# PARTs, in the order they run (default: devices decode-context host-time e2e):
#   devices         `sftc devices`: the first open's self-checks and tuning (matmul tiling, gemv
#                   workgroup, attention kernels and paths), timed; later parts reuse its tuning file
#   decode-context  bench/decode-context.ts at prompts of 128 and 2048 tokens, over an f32 and
#                   an f16 KV cache
#   host-time       bench/host-time.ts: where a thin 32-layer decode step's host time goes, and
#                   the step's wall time beside it
#   e2e             LoRA and QLoRA steps of the Baichuan-7B-sized model against PyTorch + PEFT,
#                   f32 weights, with a per-kernel profile (bench/e2e-train.ts --torch --profile)
#   e2e-bf16        the LoRA step with the frozen weights in bf16, against PEFT
#   bench           `npm run bench -- --size full`: ceilings, every kernel row, the 7B decode in f32
#                   and bf16 against transformers' generate
#
# Each part runs under its own time limit (PART_SECONDS, default 300; the bench part twice that)
# and writes into OUTDIR: log.txt, smi.csv and its reports (e2e and bench two each, the others
# one; all six parts write ten files). log.txt gets every part's stderr, exit status and
# seconds, the commit (SFT_COMMIT where the copy has no git history) and the card. A part that
# fails or runs out of time does not stop the next.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash bench/gpu-run.sh OUTDIR [devices|decode-context|host-time|e2e|e2e-bf16|bench ...]" >&2; exit 2; }
out=$1
shift
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(devices decode-context host-time e2e)
limit=${PART_SECONDS:-300}
mkdir -p "$out"
log="$out/log.txt"

{
  if git rev-parse --git-dir >/dev/null 2>&1; then
    echo "sftc $(git rev-parse --short HEAD)$(git diff --quiet || echo ' plus uncommitted changes'), $(date -u +%FT%TZ)"
  else
    echo "sftc ${SFT_COMMIT:-(commit unknown: no git history here and no SFT_COMMIT)}, $(date -u +%FT%TZ)"
  fi
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1
  else
    echo "no nvidia-smi: the card is named by the parts' reports only"
  fi
} >"$log"
if command -v nvidia-smi >/dev/null; then
  # the card's clocks, power and memory through the run, every half second
  nvidia-smi --query-gpu=timestamp,memory.used,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv,noheader -lms 500 >"$out/smi.csv" 2>/dev/null &
  trap "kill $! 2>/dev/null" EXIT
fi

# part NAME SECONDS REPORT COMMAND...: stdout to OUTDIR/REPORT, stderr to the log
part() {
  local name=$1 seconds=$2 report=$3
  shift 3
  echo "== $name: $*" >>"$log"
  local start=$SECONDS
  timeout "$seconds" "$@" >"$out/$report" 2>>"$log"
  local rc=$?
  echo "== $name: exit $rc$([ $rc = 124 ] && echo ' (out of time)') after $((SECONDS - start)) s" >>"$log"
  echo "$name: exit $rc after $((SECONDS - start)) s"
}

for p in "${parts[@]}"; do
  case $p in
    devices) part devices "$limit" devices.txt node bin/sftc.js devices ;;
    decode-context) part decode-context "$limit" decode-context.txt bash -c "node bin/run-ts.js bench/decode-context.ts 128 2048 && node bin/run-ts.js bench/decode-context.ts --cache=f16 128 2048" ;;
    host-time) part host-time "$limit" host-time.txt node bin/run-ts.js bench/host-time.ts ;;
    e2e) part e2e "$limit" e2e.md node bin/run-ts.js bench/e2e-train.ts --method lora,qlora --torch --profile --out "$out/e2e.json" ;;
    e2e-bf16) part e2e-bf16 "$limit" e2e-bf16.md node bin/run-ts.js bench/e2e-train.ts --method lora --dtype bf16 --torch ;;
    bench) part bench $((2 * limit)) bench.json node bin/run-ts.js bench/main.ts --size full --out "$out/bench.md" --json ;;
    *) echo "gpu-run: unknown part '$p'" | tee -a "$log" >&2 ;;
  esac
done
grep -E "^== .*exit" "$log"

# Session-4 GPU run: e2e LoRA+QLoRA vs PEFT (wg64-vec4-pad default, low-rank epilogue), then the
# bench with kernels (default-tiling, NF4, gemv, attention rows), PyTorch ceilings and 7B decode
# in one report; nvidia-smi clocks/power/memory sampled throughout.
ET=${ET:-200}; BT=${BT:-280}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv > $OUT/log.txt 2>&1
(nvidia-smi --query-gpu=timestamp,memory.used,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv,noheader -lms 500 > $OUT/smi.csv 2>/dev/null &)
echo "tree: $(cat .kit/commit) plus uncommitted changes as copied" >> $OUT/log.txt
t1=$(date +%s)
timeout $ET node bin/run-ts.js bench/e2e-train.ts --method lora,qlora --torch --out $OUT/e2e.json > $OUT/e2e.md 2>> $OUT/log.txt
echo "== e2e rc=$? $(( $(date +%s) - t1 )) s" >> $OUT/log.txt
t0=$(date +%s)
timeout $BT node bin/run-ts.js bench/main.ts --size full --sections kernels,ceilings,generation --kernels 'vec4-pad|attention|gemv|nf4|tiled f32 x f32$' --out $OUT/bench.md --json > $OUT/bench.json 2>> $OUT/log.txt
echo "== bench rc=$? $(( $(date +%s) - t0 )) s" >> $OUT/log.txt
pkill -f "nvidia-smi --query-gpu=timestamp" 2>/dev/null
grep -E "^bench: |^== " $OUT/log.txt | cut -c1-260
grep -E "^\|" $OUT/e2e.md | head -14
grep -vE "^bench: |Warning: maxDynamic" $OUT/log.txt | tail -12 | cut -c1-300

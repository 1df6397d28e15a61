# Second GPU run of the session: the attention backward rows (host-side check fixed) and the
# matmul rows again with the warm-up by time; clocks sampled throughout.
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv > $OUT/log.txt 2>&1
(nvidia-smi --query-gpu=timestamp,memory.used,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active --format=csv,noheader -lms 250 > $OUT/smi.csv 2>/dev/null &)
echo "tree: $(cat .kit/commit) plus uncommitted changes as copied" >> $OUT/log.txt
t0=$(date +%s)
timeout ${BT:-170} node bin/run-ts.js bench/main.ts --size full --sections kernels --kernels 'vec4-pad|attention backward|tiled f32 x f32$' --out $OUT/bench.md --json > $OUT/bench.json 2>> $OUT/log.txt
echo "== bench rc=$? $(( $(date +%s) - t0 )) s" >> $OUT/log.txt
pkill -f "nvidia-smi --query-gpu=timestamp" 2>/dev/null
grep -E "^bench: |^== " $OUT/log.txt | cut -c1-260
grep -vE "^bench: |Warning: maxDynamic" $OUT/log.txt | tail -8 | cut -c1-300

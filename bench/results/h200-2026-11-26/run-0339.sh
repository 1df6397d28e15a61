# The combined GPU run: device self-check, kernels, ceilings and 7B decode vs transformers
# (bench full), then the 7B LoRA training steps against PEFT with the fastest correct matmul of
# the bench's FFN-up rows. Each part under its own limit.
SIZE=${SIZE:-full}; BT=${BT:-250}; ET=${ET:-110}; E2E_ARGS=${E2E_ARGS:---method lora --torch}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv > $OUT/log.txt 2>&1
(nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader -lms 250 > $OUT/mem.csv 2>/dev/null &)
echo "tree: $(cat .kit/commit) plus uncommitted changes as copied" >> $OUT/log.txt
t0=$(date +%s)
timeout 60 node bin/sftc.js devices > $OUT/devices.txt 2>&1; echo "== devices rc=$? $(( $(date +%s) - t0 )) s" >> $OUT/log.txt
t0=$(date +%s)
timeout $BT node bin/run-ts.js bench/main.ts --size $SIZE --out $OUT/bench-full.md --json > $OUT/full.json 2>> $OUT/log.txt
echo "== bench rc=$? $(( $(date +%s) - t0 )) s" >> $OUT/log.txt
PICK=$(node .kit/pick.mjs $OUT/log.txt 2>> $OUT/log.txt); echo "== e2e with: $PICK" >> $OUT/log.txt
t1=$(date +%s)
env $PICK timeout $ET node bin/run-ts.js bench/e2e-train.ts $E2E_ARGS --out $OUT/e2e.json > $OUT/e2e.md 2>> $OUT/log.txt
echo "== e2e rc=$? $(( $(date +%s) - t1 )) s" >> $OUT/log.txt
pkill -f "nvidia-smi --query-gpu=timestamp" 2>/dev/null
grep -E "self-check|warning" $OUT/devices.txt | head -8
grep -E "^bench: |^== |^[0-9.]+ ms " $OUT/log.txt | cut -c1-250
cat $OUT/e2e.md | grep -E "^\|" | head -12; grep -vE "^bench: |^[0-9.]+ ms |Warning: maxDynamic" $OUT/log.txt | tail -15 | cut -c1-300

source .kit/setup.sh; timeout 140 node bin/run-ts.js bench/main.ts --size full --sections kernels --kernels "dK/dV" --out $OUT/bench.md --json > $OUT/bench.json 2> $OUT/log.txt

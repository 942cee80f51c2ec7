#!/usr/bin/env bash
# Rerun the GPU records the README quotes for the end-to-end pipeline, its memory, VGGT and alignment (the set
# that replaced the first session's unrecorded bench/results/before_records/, issue #9 point 6) with the current
# scripts, each stamped by bench/record.py (commit, GPU, torch, exact command). One call on the lent H200,
# about 5 minutes:
#
#     bash bench/regen_before_records.sh          # from the repository root; results go to $OUT
#
# $OUT must be set (the device runner sets it). $POINTMAP_COMMIT names the commit sent (the GPU machine's
# .git can be stale); without it .gpujobs/COMMIT is read, else record.py asks git. Wheels the GPU machine lacks
# may be carried in .gpujobs/whl/ (installed into /tmp/site, as the other GPU jobs do). The package is imported
# from this checkout through a `pointmap` link (the repository root is the package), as `make test-gpu` does.
#
# Every command has its own time limit; one that fails or runs out leaves its log and whatever it wrote, and the
# others still run. Measured run times on the H200: VGGT ~113 s (session 6), alignment ~25 s, pipeline ~20 s,
# pipeline memory ~60 s (sessions 1 and 3), each plus ~10 s of start-up.
set -u
: "${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export POINTMAP_COMMIT="${POINTMAP_COMMIT:-$(cat .gpujobs/COMMIT 2>/dev/null || true)}"
[ -n "$POINTMAP_COMMIT" ] || unset POINTMAP_COMMIT
if compgen -G ".gpujobs/whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .gpujobs/whl/*.whl > "$OUT/pip.log" 2>&1
fi
link=$(mktemp -d)
ln -sfn "$PWD" "$link/pointmap"
export PYTHONPATH="$link:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, pointmap.core; assert torch.cuda.is_available(), 'no CUDA device'" || exit 2

run() {   # run NAME SECONDS COMMAND...: stdout to $OUT/NAME.json unless the command writes its own file
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.stdout" 2> "$OUT/$name.log"
    local rc=$?
    echo "$name: rc $rc in $((SECONDS - start)) s"
    [ -s "$OUT/$name.stdout" ] && [ ! -e "$OUT/$name.json" ] && mv "$OUT/$name.stdout" "$OUT/$name.json"
    rm -f "$OUT/$name.stdout"
}

# pipeline.json: reconstruct() end to end on the sample photos (DUSt3R 512 DPT and VGGT-1B, random weights).
run pipeline 40 python3 bench/bench_pipeline.py
# pipeline_memory*.json: the pairwise path's memory with float16 prediction storage, on the device and
# with predictions offloaded to pinned host memory.
run pipeline_memory 55 python3 bench/bench_pipeline.py --only dust3r --views 32 64
run pipeline_memory_offload 35 python3 bench/bench_pipeline.py --only dust3r --views 32 --offload


# vggt.json: the VGGT table of the README (1-200 frames, eager and fused).
run vggt 140 python3 bench/bench_vggt.py --frames 1,10,50,100,200 --variants eager-bf16-heads,fused-bf16-heads \
    --out "$OUT/vggt.json"
# align.json: complete graphs of 8/16/32 views, the 200-view sparse scene, and CUDA graphs vs eager.
run align 50 python3 bench/bench_align.py --sizes 8 16 32 --sparse 200 --eager
python3 - <<'EOF'
import json, os
out = os.environ["OUT"]
for name in ("vggt", "align", "pipeline", "pipeline_memory", "pipeline_memory_offload"):
    path = os.path.join(out, name + ".json")
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as err:
        print(f"{name}: no result ({err.__class__.__name__})")
        continue
    rec = d.get("record", {})
    print(f"{name}: commit {rec.get('commit')}, {rec.get('gpu')}, torch {rec.get('torch')}")
EOF

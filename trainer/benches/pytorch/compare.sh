#!/usr/bin/env bash
# Compare `crosskd bench train-step` (burn-flex) with the PyTorch reference
# (train_step.py, same networks, same input, same Σ-of-squares loss) for the
# four detectors, alternating the two in one session so that both see the same
# machine load, and print a table of medians and ratios (ours / torch).
#
#   trainer/benches/pytorch/compare.sh
#   ROUNDS=2 ITERS=3 WARMUP=1 DETECTORS="gfl fcos" trainer/benches/pytorch/compare.sh
#
# Environment: DETECTORS (gfl retinanet fcos atss), BACKBONE (r18), SIZE (320),
# BATCH (2), THREADS (2), ITERS (5), WARMUP (2), ROUNDS (1: each round runs
# every detector once per build; the order rotates every round; the table shows
# the round with the lowest ours+torch fwd+bwd time (the least disturbed by
# other processes: PyTorch's OpenMP threads slow down several-fold when a core
# is taken), its ratios, and with ROUNDS > 1 every round's ratios),
# CROSSKD (binary to run; default: built here in the dev profile),
# EXTRA (optional other builds of ours as "label=/path/to/crosskd ...", e.g. one
# with an optimisation: measured in the same rounds, one table row each),
# PYTHON (python3), OUT (keep the raw JSON lines in this file),
# IDLE_WAIT (seconds, default 0: before each run, wait up to this long for the
# CPUs to be >= 90% idle over 3 consecutive 2 s samples; the table reports
# the load average at the end of each run either way).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$ROOT"
DETECTORS="${DETECTORS:-gfl retinanet fcos atss}"
BACKBONE="${BACKBONE:-r18}"
SIZE="${SIZE:-320}"
BATCH="${BATCH:-2}"
THREADS="${THREADS:-2}"
ITERS="${ITERS:-5}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-1}"
PYTHON="${PYTHON:-python3}"
TORCH_SCRIPT="$ROOT/trainer/benches/pytorch/train_step.py"

if [[ -z "${CROSSKD:-}" ]]; then
  # The dev profile optimises every dependency (opt-level 3); never --release here:
  # it would rebuild burn from scratch. cargo waits for the build lock itself.
  cargo build -p crosskd-trainer --bin crosskd >&2
  CROSSKD="$ROOT/target/debug/crosskd"
fi

RAW="${OUT:-$(mktemp)}"
: >"$RAW"
common=(--backbone "$BACKBONE" --size "$SIZE" --batch "$BATCH" --threads "$THREADS"
        --iters "$ITERS" --warmup "$WARMUP" --json)

run_ours() { # binary detector
  "$1" bench train-step --detector "$2" "${common[@]}"
}
run_torch() {
  OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" \
    "$PYTHON" "$TORCH_SCRIPT" --detector "$1" "${common[@]}"
}
declare -A BIN=([ours]="$CROSSKD")
runners=(ours torch)
for spec in ${EXTRA:-}; do
  BIN[${spec%%=*}]="${spec#*=}"
  runners+=("${spec%%=*}")
done
IDLE_WAIT="${IDLE_WAIT:-0}"
cpu_idle_pct() { # idle percentage of all CPUs over 2 s
  local u n s i w x y z t1 i1 t2 i2
  read -r _ u n s i w x y z _ </proc/stat; t1=$((u + n + s + i + w + x + y + z)); i1=$((i + w))
  sleep 2
  read -r _ u n s i w x y z _ </proc/stat; t2=$((u + n + s + i + w + x + y + z)); i2=$((i + w))
  echo $((100 * (i2 - i1) / (t2 - t1 + 1)))
}
wait_idle() {
  ((IDLE_WAIT > 0)) || return 0
  local start=$SECONDS ok=0 idle
  while ((SECONDS - start < IDLE_WAIT)); do
    idle=$(cpu_idle_pct)
    if ((idle >= 90)); then ok=$((ok + 1)); else ok=0; fi
    ((ok >= 3)) && return 0
  done
  echo "  (CPUs still busy after ${IDLE_WAIT}s: measuring anyway)" >&2
}
record() { # framework detector round json
  local load
  load="$(cut -d' ' -f1-3 /proc/loadavg)"
  "$PYTHON" -c 'import json,sys; r=json.loads(sys.argv[4]); r.update(framework=sys.argv[1], detector=sys.argv[2], round=int(sys.argv[3]), load=sys.argv[5]); print(json.dumps(r))' \
    "$1" "$2" "$3" "$4" "$load" >>"$RAW"
  echo "  $1 $2 round $3 done (load $load)" >&2
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Who runs in which order rotates every round, so no build always goes first.
for ((round = 0; round < ROUNDS; round++)); do
  for det in $DETECTORS; do
    for ((k = 0; k < ${#runners[@]}; k++)); do
      who="${runners[$(((k + round) % ${#runners[@]}))]}"
      wait_idle
      if [[ "$who" == torch ]]; then
        record torch "$det" "$round" "$(run_torch "$det")"
      else
        record "$who" "$det" "$round" "$(run_ours "${BIN[$who]}" "$det")"
      fi
    done
  done
done

"$PYTHON" - "$RAW" "$DETECTORS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
dets = sys.argv[2].split()
med = statistics.median
first = rows[0]
torch_backend = next((r["backend"] for r in rows if r["framework"] == "torch"), "?")
ours_backend = next((r["backend"] for r in rows if r["framework"] == "ours"), "?")
print(f"R{first['depth']} {first['size']}x{first['size']} batch {first['batch']}; "
      f"ours = {ours_backend}, torch = {torch_backend}")
print("median ms over timed iterations, from the round with the lowest ours + torch fwd+bwd; ratio = ours / torch")
builds = [b for b in dict.fromkeys(r["framework"] for r in rows) if b != "torch"]
hdr = ("detector", "build", "ours fwd", "torch fwd", "ratio", "ours f+b", "torch f+b", "ratio", "ours step", "load (1/5/15 min) after ours | torch")
print(f"{hdr[0]:<10} {hdr[1]:<10} {hdr[2]:>9} {hdr[3]:>9} {hdr[4]:>6} {hdr[5]:>9} {hdr[6]:>9} {hdr[7]:>6} {hdr[8]:>9}  {hdr[9]}")
def get(d, b, k):
    return next((r for r in rows if r["detector"] == d and r["round"] == k and r["framework"] == b), None)
detail = []
for d in dets:
    for b in builds:
        pairs = []
        for k in sorted({r["round"] for r in rows}):
            o, t = get(d, b, k), get(d, "torch", k)
            if o and t:
                pairs.append((o["forward_backward_ms"][0] + t["forward_backward_ms"][0], k, o, t))
        if not pairs:
            continue
        _, k, o, t = min(pairs, key=lambda p: p[0])
        of, tf = o["forward_ms"][0], t["forward_ms"][0]
        ofb, tfb = o["forward_backward_ms"][0], t["forward_backward_ms"][0]
        print(f"{d:<10} {b:<10} {of:>9.1f} {tf:>9.1f} {of / tf:>6.2f} {ofb:>9.1f} {tfb:>9.1f} "
              f"{ofb / tfb:>6.2f} {o['train_step_ms'][0]:>9.1f}  {o['load']} | {t['load']}")
        if len(pairs) > 1:
            per = ", ".join(f"r{k}: {o['forward_ms'][0] / t['forward_ms'][0]:.2f}/{o['forward_backward_ms'][0] / t['forward_backward_ms'][0]:.2f}"
                            for _, k, o, t in sorted(pairs, key=lambda p: p[1]))
            detail.append(f"  {d:<10} {b:<10} {per}")
if detail:
    print("fwd/fwd+bwd ratios of every round:")
    print("\n".join(detail))
EOF
[[ -n "${OUT:-}" ]] || rm -f "$RAW"

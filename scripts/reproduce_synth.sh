#!/usr/bin/env bash
# Reproduces docs/results.md: on the embedded synthetic benchmark, a teacher, then
# the student baseline, pred-mimic, PKD, CrossKD and CrossKD+PKD with the same
# schedule, for each seed; prints a markdown table (final AP of each run) with
# wall times.
#
#   scripts/reproduce_synth.sh [DETECTOR] [OUT_DIR] [SEEDS...]
#   DETECTOR: gfl (default), retinanet, fcos or atss; SEEDS default: 0 1
#   CROSSKD=path/to/crosskd to use another binary (default: builds target/debug/crosskd).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
det=${1:-gfl}
out=${2:-$root/work_dirs/reproduce_$det}
shift $(( $# > 2 ? 2 : $# ))
seeds=("$@")
[ ${#seeds[@]} -eq 0 ] && seeds=(0 1)
if [ -z "${CROSSKD:-}" ]; then
  (cd "$root" && cargo build -q -p crosskd-trainer --bin crosskd)
  CROSSKD=$root/target/debug/crosskd
fi
mkdir -p "$out"
cd "$out"
ln -sfn "$root/trainer/configs" configs
[ -f data/synth/val.json ] || "$CROSSKD" synth --out data/synth --train 600 --val 150 --size 160 --seed 0

final_ap() { # last evaluation row of a metrics.csv: AP AP50 AP75 APs APm APl
  awk -F, 'NR==1{for(i=1;i<=NF;i++)c[$i]=i} NR>1 && $c["AP"]!=""{r=sprintf("%.1f | %.1f | %.1f | %.1f | %.1f | %.1f",100*$c["AP"],100*$c["AP50"],100*$c["AP75"],100*$c["APs"],100*$c["APm"],100*$c["APl"])} END{print r}' "$1/metrics.csv"
}

rows=()
w=work_dirs/synth_${det}_teacher
if [ ! -f $w/best.ckpt ]; then
  t0=$SECONDS
  "$CROSSKD" train --config configs/synth_${det}_teacher.toml --quiet > teacher.log 2>&1
  tt=$((SECONDS - t0))
else
  tt="(reused)"
fi
rows+=("| teacher (R18×0.5, 64-ch FPN/head) | 0 | $(final_ap $w) | $tt |")
for seed in "${seeds[@]}"; do
  for mode in none pred-mimic pkd crosskd crosskd+pkd; do
    w=work_dirs/${det}_${mode}_s$seed
    t0=$SECONDS
    "$CROSSKD" distill --config configs/synth_${det}_student.toml --mode "$mode" --seed "$seed" \
      --work-dir "$w" --quiet > "${det}_${mode}_s$seed.log" 2>&1
    rows+=("| student (R18×0.25, 32-ch) $mode | $seed | $(final_ap $w) | $((SECONDS - t0)) |")
  done
done
echo "| run | seed | AP | AP50 | AP75 | APs | APm | APl | wall s |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"

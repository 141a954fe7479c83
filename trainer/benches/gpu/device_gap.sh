#!/usr/bin/env bash
# One prepared run on a lent CUDA machine: (1) `cuda_parity` (CUDA must compute what
# burn-flex computes, gradients included, with the strided-1x1 workaround), run beside
# (2) the teacher-student capacity study on the 160 px synthetic benchmark: four
# detectors of growing size trained from scratch with one schedule, side by side on
# the one GPU, so the AP gap between a compact student and larger teachers is
# measured at the same iteration count.
# Usage: device_gap.sh CROSSKD_BINARY[.gz|.xz] CUDA_PARITY_BINARY[.gz|.xz] OUT_DIR [ITERS] [TRAIN_S]
# Brings back: gpu.txt (timings), parity.txt, logs.txt (each run's evals),
# metrics.tgz (metrics.csv + plots) and each run's best checkpoint.
set -uo pipefail
# xz, or Python's lzma where the machine has no xz.
unxz_to() { xz -dc "$1" > "$2" 2>/dev/null || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; }
out=$(readlink -f "$3"); iters=${4:-1200}; train_s=${5:-400}
repo=$(cd "$(dirname "$0")/../../.." && pwd)
unpack() { # $1 path (maybe .gz), $2 name under /tmp
  case $1 in
    *.gz) gunzip -c "$1" > /tmp/$2 ;;
    *.xz) unxz_to "$1" /tmp/$2 ;;
    *) cp "$1" /tmp/$2 ;;
  esac
  chmod +x /tmp/$2
}
unpack "$1" crosskd; unpack "$2" cuda_parity; bin=/tmp/crosskd
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d $d ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
done
nvrtc=$(python3 -c 'import nvidia.cuda_nvrtc, os; print(os.path.dirname(nvidia.cuda_nvrtc.__file__)+"/lib")' 2>/dev/null) && export LD_LIBRARY_PATH=$nvrtc:$LD_LIBRARY_PATH
nvidia-smi -L > $out/gpu.txt 2>&1
work=${WORK:-/tmp/gapstudy}; mkdir -p $work; cd $work
t0=$SECONDS
$bin synth --out data/synth --train 600 --val 150 --size 160 --seed 0 --quiet > synth.log 2>&1
echo "synth: rc $? $((SECONDS - t0)) s" | tee -a $out/gpu.txt
q=$((iters / 4))
# name depth width channels gn_groups; RUNS overrides the set (e.g. RUNS="r34x1_128:34:1.0:128:32
# r50x1_128:50:1.0:128:32" for the larger teachers alone: the CPU already has the R18 numbers).
runs=${RUNS:-"r18x025_32:18:0.25:32:8 r18x05_64:18:0.5:64:16 r18x1_128:18:1.0:128:32 r50x1_128:50:1.0:128:32"}
for r in $runs; do
  IFS=: read -r name depth width ch gn <<< "$r"
  sed -e "s/^iters = 600/iters = $iters/" -e "s/^eval_interval = 300/eval_interval = $q/" \
      -e "s/^checkpoint_interval = 300/checkpoint_interval = $q/" \
      -e "s/^depth = 18/depth = $depth/" -e "s/^width_mult = 0.5/width_mult = $width/" \
      -e "s/^out_channels = 64/out_channels = $ch/" -e "s/^in_channels = 64/in_channels = $ch/" \
      -e "s/^feat_channels = 64/feat_channels = $ch/" -e "s/^gn_groups = 16/gn_groups = $gn/" \
      $repo/trainer/configs/synth_gfl_teacher.toml > $name.toml
done
t0=$SECONDS
( timeout 150 /tmp/cuda_parity --nocapture > $out/parity.txt 2>&1; echo "parity: rc $? $((SECONDS - t0)) s" >> $out/gpu.txt ) &
for r in $runs; do
  name=${r%%:*}
  ( timeout $train_s $bin train --config $name.toml --device ${DEVICE:-cuda:0} --quiet --work-dir work_dirs/$name > $name.log 2>&1
    echo "$name ($iters iters): rc $? $((SECONDS - t0)) s" >> $out/gpu.txt ) &
done
wait
for f in work_dirs/*/metrics.csv; do echo "== $f"; awk -F, 'NR == 1 {for (i = 1; i <= NF; i++) c[$i] = i; next}
    $c["AP"] != "" {printf "iter %s  t %.0f s  AP %.4f AP50 %.4f APs %.4f\n", $2, $4, $c["AP"], $c["AP50"], $c["APs"]}' $f; done > $out/logs.txt 2>&1
tail -n 4 *.log >> $out/logs.txt 2>&1
tar czf $out/metrics.tgz work_dirs/*/metrics.csv work_dirs/*/*.png *.toml 2>/dev/null
for r in $runs; do name=${r%%:*}; cp work_dirs/$name/best.ckpt $out/$name.ckpt 2>/dev/null; done
cat $out/gpu.txt; tail -n 5 $out/parity.txt; cat $out/logs.txt | head -60

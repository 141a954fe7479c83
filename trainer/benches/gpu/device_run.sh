#!/usr/bin/env bash
# One prepared run on a lent CUDA machine (see README "GPU"): the `cuda` backend's
# train-step benchmark with distillation ratios, then the synthetic-benchmark
# comparison (teacher, then 5 modes × 2 seeds run side by side on the one GPU).
# Usage: device_run.sh CROSSKD_BINARY OUT_DIR [ITERS] [SECONDS_PER_RUN]
set -uo pipefail
bin=$(readlink -f "$1"); out=$2; iters=${3:-600}; limit=${4:-200}
repo=$(cd "$(dirname "$0")/../../.." && pwd)
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d $d ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
done
nvrtc=$(python3 -c 'import nvidia.cuda_nvrtc, os; print(os.path.dirname(nvidia.cuda_nvrtc.__file__)+"/lib")' 2>/dev/null) && export LD_LIBRARY_PATH=$nvrtc:$LD_LIBRARY_PATH
nvidia-smi -L | tee $out/gpu.txt
t0=$SECONDS
timeout 90 $bin bench train-step --device cuda:0 --detector gfl --backbone r18 --size 320 --batch 2 \
  --num-classes 80 --iters 10 --mode none,crosskd,crosskd+pkd,pkd,pred-mimic --teacher r50 2>&1 | tee $out/bench_gfl_cuda.txt
echo "bench: $((SECONDS - t0)) s" | tee -a $out/gpu.txt
work=/tmp/xp; mkdir -p $work; cd $work; ln -sfn $repo/trainer/configs configs
$bin synth --out data/synth --train 600 --val 150 --size 160 --seed 0 > synth.log 2>&1
sed "s/^iters = 600/iters = $iters/" configs/synth_gfl_teacher.toml > teacher.toml
sed "s/^iters = 600/iters = $iters/" configs/synth_gfl_student.toml > student.toml
sed -i "s#work_dirs/synth_gfl_teacher#work_dirs/teacher#" teacher.toml student.toml
t0=$SECONDS
timeout $limit $bin train --config teacher.toml --device cuda:0 --quiet --work-dir work_dirs/teacher > teacher.log 2>&1
echo "teacher: rc $? $((SECONDS - t0)) s" | tee -a $out/gpu.txt
t0=$SECONDS
for seed in 0 1; do for mode in none pred-mimic pkd crosskd crosskd+pkd; do
  timeout $limit $bin distill --config student.toml --device cuda:0 --mode $mode --seed $seed \
    --work-dir work_dirs/${mode}_s$seed --quiet > ${mode}_s$seed.log 2>&1 &
done; done
wait
echo "students: $((SECONDS - t0)) s" | tee -a $out/gpu.txt
tail -n 3 *.log > $out/logs.txt 2>&1
tar czf $out/metrics.tgz work_dirs/*/metrics.csv work_dirs/*/*.png 2>/dev/null
ls -la $out

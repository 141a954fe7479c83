#!/usr/bin/env bash
# One prepared run on a lent CUDA machine (see README "GPU"): the `cuda` backend's
# train-step benchmark with distillation ratios, then the synthetic-benchmark
# comparison (teacher, then 5 modes × 2 seeds run side by side on the one GPU).
# Usage: device_run.sh CROSSKD_BINARY[.gz] OUT_DIR [ITERS] [TEACHER_S] [STUDENTS_S]
# Brings back: gpu.txt (timings), bench_gfl_cuda.txt, logs.txt, metrics.tgz (every
# run's metrics.csv and plots), teacher.ckpt and the none/crosskd seed-0 students.
set -uo pipefail
bin=$(readlink -f "$1"); out=$(readlink -f "$2"); iters=${3:-600}
teacher_s=${4:-200}; students_s=${5:-240}
repo=$(cd "$(dirname "$0")/../../.." && pwd)
if [[ $bin == *.gz ]]; then gunzip -c "$bin" > /tmp/crosskd && chmod +x /tmp/crosskd && bin=/tmp/crosskd; fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d $d ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
done
nvrtc=$(python3 -c 'import nvidia.cuda_nvrtc, os; print(os.path.dirname(nvidia.cuda_nvrtc.__file__)+"/lib")' 2>/dev/null) && export LD_LIBRARY_PATH=$nvrtc:$LD_LIBRARY_PATH
nvidia-smi -L | tee $out/gpu.txt
t0=$SECONDS
timeout 60 $bin bench train-step --device cuda:0 --detector gfl --backbone r18 --size 320 --batch 2 \
  --num-classes 80 --iters 5 --mode none,crosskd,crosskd+pkd,pkd,pred-mimic --teacher r50 2>&1 | tee $out/bench_gfl_cuda.txt
echo "bench: $((SECONDS - t0)) s" | tee -a $out/gpu.txt
work=/tmp/xp; mkdir -p $work; cd $work; ln -sfn $repo/trainer/configs configs
$bin synth --out data/synth --train 600 --val 150 --size 160 --seed 0 --quiet > synth.log 2>&1
q=$((iters / 4))
for r in teacher student; do
  sed -e "s/^iters = 600/iters = $iters/" -e "s/^eval_interval = 300/eval_interval = $q/" \
      -e "s/^checkpoint_interval = 300/checkpoint_interval = $q/" configs/synth_gfl_$r.toml > $r.toml
done
sed -i "s#work_dirs/synth_gfl_teacher#work_dirs/teacher#" teacher.toml student.toml
t0=$SECONDS
timeout $teacher_s $bin train --config teacher.toml --device cuda:0 --quiet --work-dir work_dirs/teacher > teacher.log 2>&1
echo "teacher ($iters iters): rc $? $((SECONDS - t0)) s" | tee -a $out/gpu.txt
t0=$SECONDS
for seed in 0 1; do for mode in none pred-mimic pkd crosskd crosskd+pkd; do
  timeout $students_s $bin distill --config student.toml --device cuda:0 --mode $mode --seed $seed \
    --work-dir work_dirs/${mode}_s$seed --quiet > ${mode}_s$seed.log 2>&1 &
done; done
wait
echo "students ($iters iters, 10 in parallel): $((SECONDS - t0)) s" | tee -a $out/gpu.txt
for f in work_dirs/*/metrics.csv; do echo "== $f"; grep -v '^$' $f | awk -F, 'NR==1 || $0 ~ /[0-9]\.[0-9]+,[0-9]/' | tail -n 3; done > $out/logs.txt 2>&1
tail -n 3 *.log >> $out/logs.txt 2>&1
tar czf $out/metrics.tgz work_dirs/*/metrics.csv work_dirs/*/*.png 2>/dev/null
cp work_dirs/teacher/best.ckpt $out/teacher.ckpt 2>/dev/null
cp work_dirs/crosskd_s0/best.ckpt $out/student_crosskd_s0.ckpt 2>/dev/null
cp work_dirs/none_s0/best.ckpt $out/student_none_s0.ckpt 2>/dev/null
ls -la $out

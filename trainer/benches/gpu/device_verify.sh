#!/usr/bin/env bash
# One prepared run on a lent CUDA machine: the CUDA test binaries (`cargo test -p
# crosskd-trainer --features cuda --test cuda_parity --test cuda_ops --no-run`,
# stripped and xz-compressed into DIR) side by side; when every one passes and DIR
# holds crosskd.xz, the capacity study (`device_gap.sh`) with that binary.
# Usage: device_verify.sh DIR OUT_DIR [ITERS] [TRAIN_S] [TEST_S]
set -uo pipefail
# xz, or Python's lzma where the machine has no xz.
unxz_to() { xz -dc "$1" > "$2" 2>/dev/null || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; }
dir=$(readlink -f "$1"); out=$(readlink -f "$2"); iters=${3:-1200}; train_s=${4:-300}; test_s=${5:-120}
here=$(cd "$(dirname "$0")" && pwd)
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d $d ] && export LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}
done
nvrtc=$(python3 -c 'import nvidia.cuda_nvrtc, os; print(os.path.dirname(nvidia.cuda_nvrtc.__file__)+"/lib")' 2>/dev/null) && export LD_LIBRARY_PATH=$nvrtc:$LD_LIBRARY_PATH
t0=$SECONDS
for f in $dir/*.xz; do
  t=$(basename $f .xz); [ $t = crosskd ] && continue
  unxz_to $f /tmp/$t && chmod +x /tmp/$t
  ( timeout $test_s /tmp/$t --nocapture > $out/$t.txt 2>&1; echo "$t: rc $? $((SECONDS - t0)) s" >> $out/verify.txt ) &
done
wait
cat $out/verify.txt
if ! grep -qv ": rc 0 " $out/verify.txt && [ -f $dir/crosskd.xz ]; then
  bash $here/device_gap.sh $dir/crosskd.xz /bin/true $out $iters $train_s
fi

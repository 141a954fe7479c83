#!/usr/bin/env python3
"""onnxruntime's inference latency on a crosskd ONNX model: the reference the SDK's
end-to-end time (`crosskd-sdk bench`) is compared with.

    python3 sdk/benches/ort_infer.py MODEL.onnx --threads 1,2 --iters 50

Prints median and p95 of `session.run` alone (no pre- or post-processing), per thread
count, with intra- and inter-op threads both set to N and sequential execution.
"""
import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    for n in [int(t) for t in a.threads.split(",")]:
        so = ort.SessionOptions()
        so.intra_op_num_threads = n
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for _ in range(a.warmup):
            sess.run(None, {inp.name: x})
        times = []
        for _ in range(a.iters):
            t0 = time.perf_counter()
            sess.run(None, {inp.name: x})
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        p95 = times[min(len(times) - 1, round((len(times) - 1) * 0.95))]
        print(f"onnxruntime {ort.__version__} threads {n}: infer median {statistics.median(times):.2f} ms, p95 {p95:.2f} ms")


if __name__ == "__main__":
    main()

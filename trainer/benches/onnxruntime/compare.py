#!/usr/bin/env python3
"""Cross-check crosskd's ONNX exports in onnxruntime against tract.

Reads the directory written by the ignored test `export_ort`
(`dump_models_outputs_and_tract_latency`): for every case and precision it runs
the same model file on the same input in onnxruntime, compares each output with
tract's, times onnxruntime at 1 and 2 intra-op threads, and prints a Markdown
table (max abs diff, max diff relative to the tensor's magnitude, latencies,
file sizes).

onnxruntime is a measuring instrument here only (pip install onnxruntime numpy),
never a dependency of the product. Note: activations are int8 on purpose —
onnxruntime's AVX2 u8-activation x full-range-int8-weight path overflows
(shared/notes/dependencies.md), int8 x int8 is exact.

    python3 trainer/benches/onnxruntime/compare.py target/tmp/ort
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def median_ms(sess, feed, iters):
    sess.run(None, feed)
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feed)
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts))


def main():
    d = Path(sys.argv[1] if len(sys.argv) > 1 else "target/tmp/ort")
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    manifest = json.loads((d / "manifest.json").read_text())
    print(f"onnxruntime {ort.__version__}, TRACT_CPU_ISA={manifest['tract_cpu_isa'] or '(default)'}\n")
    print("| model | precision | size MB | max abs diff ORT vs tract | max diff / max abs | "
          "tract ms 1t | tract ms 2t | ORT ms 1t | ORT ms 2t |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in manifest["cases"]:
        shape = case["input_shape"]
        x = np.fromfile(d / f"{case['name']}.input.bin", dtype="<f4").reshape(shape)
        for prec, m in case["models"].items():
            path = d / m["file"]
            sess = session(path, 1)
            names = [o.name for o in sess.get_outputs()]
            expected = [o["name"] for o in m["outputs"]]
            assert names == expected, (names, expected)
            outs = sess.run(None, {"images": x})
            abs_d, rel_d = 0.0, 0.0
            for o, meta in zip(outs, m["outputs"]):
                t = np.fromfile(d / f"{case['name']}.{prec}.{meta['name']}.bin", dtype="<f4")
                t = t.reshape(meta["shape"])
                assert o.shape == t.shape, (meta["name"], o.shape, t.shape)
                diff = float(np.max(np.abs(o - t)))
                abs_d = max(abs_d, diff)
                rel_d = max(rel_d, diff / max(float(np.max(np.abs(t))), 1e-12))
            o1 = median_ms(sess, {"images": x}, iters)
            o2 = median_ms(session(path, 2), {"images": x}, iters)
            print(f"| {case['name']} | {prec} | {m['bytes'] / 1e6:.2f} | {abs_d:.3g} | {rel_d:.3g} | "
                  f"{m['tract_ms_1t']:.1f} | {m['tract_ms_2t']:.1f} | {o1:.1f} | {o2:.1f} |")


if __name__ == "__main__":
    main()

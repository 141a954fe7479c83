#!/usr/bin/env python3
"""The SDK's end-to-end latency against onnxruntime's fp32 inference, in one run.

    python3 sdk/benches/ratio.py --config firmware-configs/x86-64-dev.toml \\
        --fp32 student.onnx --int8 student.int8.onnx --threads 1,2 --rounds 5

Each round runs, per thread count, `sdk/benches/ort_infer.py` on the fp32 model
(`session.run` alone) and `crosskd-sdk bench` on each precision (pre + infer +
post on a 640x480 frame), one process after the other, so a busy machine
disturbs both sides alike. The ratio `SDK e2e / ORT fp32` is taken per round;
the table shows medians over rounds (stage medians, ratio median and range),
and the load average before and after. `--pin 0,1` runs every process under
`taskset` on those CPUs (the first N for N threads).

onnxruntime is a measuring instrument only (`pip install onnxruntime numpy`).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROW = re.compile(
    r"^\s*(\d+)\s+(\S+)\s+\|\s+([\d.]+)\s+[\d.]+\s+\|\s+([\d.]+)\s+[\d.]+\s+\|"
    r"\s+([\d.]+)\s+[\d.]+\s+\|\s+([\d.]+)\s+[\d.]+\s+\|"
)
ORT = re.compile(r"threads (\d+): infer median ([\d.]+) ms")


def pinned(cmd, pin, threads):
    if not pin:
        return cmd
    return ["taskset", "-c", ",".join(pin[:threads])] + cmd


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def sdk_row(a, model, threads):
    cmd = [a.sdk, "bench", "--model", model, "--config", a.config,
           "--threads", str(threads), "--iters", str(a.iters)]
    for line in run(pinned(cmd, a.pin, threads)).splitlines():
        m = ROW.match(line)
        if m:
            return dict(pre=float(m[3]), infer=float(m[4]), post=float(m[5]), e2e=float(m[6]))
    sys.exit(f"no result row from {' '.join(cmd)}")


def ort_ms(a, threads):
    cmd = [a.python, str(HERE / "ort_infer.py"), a.fp32, "--threads", str(threads),
           "--iters", str(a.iters)]
    m = ORT.search(run(pinned(cmd, a.pin, threads)))
    return float(m[2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sdk", default=str(HERE.parents[1] / "target/release/crosskd-sdk"))
    ap.add_argument("--config", required=True)
    ap.add_argument("--fp32", required=True)
    ap.add_argument("--int8")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--pin", default="", help="CPU list for taskset, e.g. 0,1")
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    a.pin = [c for c in a.pin.split(",") if c]
    threads = [int(t) for t in a.threads.split(",")]
    models = [("fp32", a.fp32)] + ([("int8", a.int8)] if a.int8 else [])
    load0 = os.getloadavg()
    samples = {}  # (threads, precision) -> list of (row, ort_ms)
    for r in range(a.rounds):
        for t in threads:
            ort = ort_ms(a, t)
            for prec, model in models:
                row = sdk_row(a, model, t)
                samples.setdefault((t, prec), []).append((row, ort))
                print(f"round {r + 1} threads {t} {prec}: SDK e2e {row['e2e']:.2f} ms, "
                      f"ORT fp32 {ort:.2f} ms, ratio {row['e2e'] / ort:.2f}", file=sys.stderr)
    load1 = os.getloadavg()
    med = statistics.median
    print(f"model {a.fp32}; {a.rounds} rounds x {a.iters} iterations; "
          f"load average {load0[0]:.1f} before, {load1[0]:.1f} after; "
          f"pinned to CPUs {a.pin or 'no'}; {os.cpu_count()} CPUs\n")
    print("| threads | precision | pre ms | infer ms | post ms | SDK e2e ms | ORT fp32 infer ms "
          "| ratio (median) | ratio range |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (t, prec), rows in samples.items():
        ratios = [row["e2e"] / ort for row, ort in rows]
        col = lambda k: med(row[k] for row, _ in rows)
        print(f"| {t} | {prec} | {col('pre'):.2f} | {col('infer'):.2f} | {col('post'):.2f} | "
              f"{col('e2e'):.2f} | {med(o for _, o in rows):.2f} | {med(ratios):.2f} | "
              f"{min(ratios):.2f}–{max(ratios):.2f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generate random COCO bbox evaluation cases and their pycocotools results.

A tool for cross-checking `crosskd_trainer::eval::coco` against the real
pycocotools; cargo never runs it. Needs `pip install pycocotools numpy`.

    python3 gen_cases.py --out /tmp/coco_cases --num 50 --seed 0
    COCO_EVAL_CASES=/tmp/coco_cases cargo test -p crosskd-trainer --lib \
        eval::coco::tests::pycocotools_random_cases -- --ignored --nocapture

Each case is a folder `case_NNN/` with `gt.json`, `dets.json` and
`expected.json`: `stats` (COCOeval.stats after evaluate/accumulate/summarize),
`stats_bits` (the same as IEEE-754 bit patterns, so the comparison does not
depend on the JSON float parser), and `per_class`: `[category_id, ap, bits]`
with ap = mean of precision[:, :, k, area=all, maxDets=100] over values > -1
(-1 when none), the per-class AP that MMDetection prints.

What the cases exercise: non-contiguous, unsorted image/category/annotation
ids; images without GT; a declared category without GT; crowd boxes; GT
`area` smaller than w*h (segmentation area) and exactly on the 32² / 96²
boundaries; boxes of all sizes; duplicated and missed objects; wrong-class
detections; background false positives; score ties (quantised scores); images
with more than 100 detections; detections on images absent from the GT and
on categories absent from the GT (pycocotools' loadRes asserts on the former,
so they are dropped before calling it: the Rust evaluator must ignore them);
optionally an annotation with id 0 (a pycocotools quirk: matches to it count
as unmatched). `--fixture` makes small cases (for the committed fixtures).

`--bench` writes one large case instead (5000 images, 80 classes, 100
detections per image) and times pycocotools on it.
"""
import argparse
import contextlib
import copy
import io
import json
import os
import random
import struct
import time

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def make_case(rng, fixture=False, bench=False):
    if bench:
        n_images, n_cats = 5000, 80
    elif fixture:
        n_images, n_cats = rng.randint(30, 40), rng.randint(3, 5)
    else:
        n_images, n_cats = rng.randint(150, 400), rng.randint(3, 8)
    coord_mode = rng.choice(["int", "round2", "full"])
    score_mode = rng.choice(["quantised", "round3", "full"])
    if bench:
        coord_mode, score_mode = "round2", "full"
    zero_ann_id = (not bench) and rng.random() < 0.3

    def coord(v):
        if coord_mode == "int":
            return float(int(round(v)))
        if coord_mode == "round2":
            return round(v, 2)
        return v

    def score(v):
        if score_mode == "quantised":
            return round(v * 10) / 10
        if score_mode == "round3":
            return round(v, 3)
        return v

    cat_ids = sorted(rng.sample(range(1, 100), n_cats + 1))
    unused_det_cat = cat_ids.pop(rng.randrange(len(cat_ids)))  # only in dets
    gtless_cat = cat_ids[rng.randrange(len(cat_ids))] if not bench and rng.random() < 0.7 else None
    img_ids = rng.sample(range(1, 10**6), n_images + 5)
    extra_imgs = img_ids[n_images:]  # only in dets
    img_ids = img_ids[:n_images]

    images = []
    for iid in img_ids:
        W, H = rng.choice([(640, 480), (800, 600), (1333, 800)])
        images.append({"id": iid, "file_name": f"{iid:012d}.jpg", "width": W, "height": H})
    categories = [{"id": c, "name": f"cls{c}", "supercategory": "x"} for c in cat_ids]
    gt_cats = [c for c in cat_ids if c != gtless_cat]

    def rand_box(W, H, scale=None):
        scale = scale or rng.choice(["s", "m", "l", "s", "m"])
        side = {"s": rng.uniform(2, 34), "m": rng.uniform(30, 98), "l": rng.uniform(94, 400)}[scale]
        ar = rng.uniform(0.5, 2.0)
        w, h = side * ar**0.5, side / ar**0.5
        x, y = rng.uniform(0, max(1, W - w)), rng.uniform(0, max(1, H - h))
        return [coord(x), coord(y), coord(w), coord(h)]

    anns = []
    for img in images:
        if rng.random() < 0.2 and not bench:
            continue  # image without GT
        n = rng.randint(1, 12) if not bench else rng.randint(1, 14)
        for _ in range(n):
            b = rand_box(img["width"], img["height"])
            r = rng.random()
            if r < 0.04:
                area = 1024.0  # exactly on the small/medium boundary
            elif r < 0.08:
                area = 9216.0  # exactly on the medium/large boundary
            elif r < 0.5:
                area = b[2] * b[3] * rng.uniform(0.5, 1.0)
            else:
                area = b[2] * b[3]
            crowd = 1 if rng.random() < 0.05 else 0
            anns.append({"image_id": img["id"], "category_id": rng.choice(gt_cats),
                         "bbox": b, "area": area, "iscrowd": crowd,
                         "segmentation": [[b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3]]]})
    ann_ids = rng.sample(range(1, 10**7), len(anns))
    if zero_ann_id and anns:
        ann_ids[rng.randrange(len(ann_ids))] = 0
    for a, i in zip(anns, ann_ids):
        a["id"] = i
    rng.shuffle(anns)
    gt = {"info": {"description": "random case"}, "licenses": [], "images": images,
          "annotations": anns, "categories": categories}

    by_img = {}
    for a in anns:
        by_img.setdefault(a["image_id"], []).append(a)
    dets = []
    for img in images:
        W, H = img["width"], img["height"]
        own = []
        for a in by_img.get(img["id"], []):
            k = rng.choice([0, 1, 1, 1, 2, 3])
            for _ in range(k):
                x, y, w, h = a["bbox"]
                j = rng.choice([0.01, 0.03, 0.06, 0.1, 0.25])
                w2, h2 = max(0.5, w * (1 + rng.gauss(0, j))), max(0.5, h * (1 + rng.gauss(0, j)))
                box = [coord(x + rng.gauss(0, j) * w), coord(y + rng.gauss(0, j) * h), coord(w2), coord(h2)]
                if rng.random() < 0.05:
                    box = list(a["bbox"])  # perfect box
                cat = a["category_id"] if rng.random() < 0.9 else rng.choice(cat_ids + [unused_det_cat])
                own.append({"image_id": img["id"], "category_id": cat, "bbox": box,
                            "score": score(rng.random())})
        n_fp = rng.randint(0, 6)
        if not bench and rng.random() < 0.05:
            n_fp = rng.randint(100, 160)  # more than 100 detections on this image
        for _ in range(n_fp):
            own.append({"image_id": img["id"], "category_id": rng.choice(cat_ids),
                        "bbox": rand_box(W, H), "score": score(rng.random() * 0.8)})
        if bench:
            while len(own) < 100:
                own.append({"image_id": img["id"], "category_id": rng.choice(cat_ids),
                            "bbox": rand_box(W, H), "score": score(rng.random() * 0.5)})
            own = own[:100]
        dets.extend(own)
    if not bench:
        for iid in extra_imgs:
            for _ in range(rng.randint(1, 5)):
                dets.append({"image_id": iid, "category_id": rng.choice(cat_ids),
                             "bbox": rand_box(640, 480), "score": score(rng.random())})
    rng.shuffle(dets)
    gt["info"]["modes"] = f"coords={coord_mode} scores={score_mode} zero_ann_id={zero_ann_id}"
    return gt, dets


def run_pycocotools(gt_path, dets, gt_img_ids):
    kept = [copy.deepcopy(d) for d in dets if d["image_id"] in gt_img_ids]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_path)
        coco_dt = coco_gt.loadRes(kept)
        e = COCOeval(coco_gt, coco_dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    per_class = []
    for k, cat_id in enumerate(e.params.catIds):
        p = e.eval["precision"][:, :, k, 0, -1]
        p = p[p > -1]
        ap = float(np.mean(p)) if p.size else -1.0
        per_class.append([int(cat_id), ap, bits(ap)])
    stats = [float(s) for s in e.stats]
    return {"stats": stats, "stats_bits": [bits(s) for s in stats], "per_class": per_class}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--num", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fixture", action="store_true", help="small cases")
    ap.add_argument("--bench", action="store_true", help="one large case, timed")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for i in range(1 if args.bench else args.num):
        rng = random.Random(args.seed * 100003 + i)
        gt, dets = make_case(rng, fixture=args.fixture, bench=args.bench)
        d = os.path.join(args.out, "bench" if args.bench else f"case_{args.seed:03d}_{i:03d}")
        os.makedirs(d, exist_ok=True)
        gt_path = os.path.join(d, "gt.json")
        with open(gt_path, "w") as f:
            json.dump(gt, f, separators=(",", ":"))
        with open(os.path.join(d, "dets.json"), "w") as f:
            json.dump(dets, f, separators=(",", ":"))
        t0 = time.time()
        exp = run_pycocotools(gt_path, dets, {im["id"] for im in gt["images"]})
        dt = time.time() - t0
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(exp, f, indent=1)
        print(f"{d}: {len(gt['images'])} images, {len(gt['annotations'])} GT, {len(dets)} dets, "
              f"AP={exp['stats'][0]:.4f} {gt['info']['modes']} pycocotools {dt:.2f}s")


if __name__ == "__main__":
    main()

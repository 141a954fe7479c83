//! Overfit test: each detector, tiny configuration, 2 generated images with a
//! few boxes each, must reach AP50 ≥ 0.9 on those images within a bounded
//! number of steps on the CPU backend.

use burn::module::AutodiffModule;
use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::TensorData;
use crosskd_sdk::{HeadKind, TestConfig};
use crosskd_trainer::backend::FlexAutodiff;
use crosskd_trainer::data::coco::{
    CocoAnnotation, CocoCategory, CocoDataset, CocoDetection, CocoImage,
};
use crosskd_trainer::data::{Batch, ImageMeta};
use crosskd_trainer::eval::coco::evaluate;
use crosskd_trainer::model::detector::DetectorConfig;
use crosskd_trainer::model::head::HeadConfig;
use crosskd_trainer::train::checkpoint::materialize;
use crosskd_trainer::train::{train_step, GtObjective};
use std::sync::Mutex;

const SIZE: usize = 128;

/// Two 128×128 images: flat coloured rectangles (class = colour) on a noisy grey background.
fn scene<B: Backend>(device: &B::Device) -> Batch<B> {
    let objects: [Vec<([f32; 4], usize)>; 2] = [
        vec![
            ([10.0, 12.0, 58.0, 70.0], 0),
            ([70.0, 30.0, 118.0, 66.0], 1),
            ([40.0, 84.0, 96.0, 120.0], 2),
        ],
        vec![
            ([16.0, 16.0, 112.0, 64.0], 2),
            ([24.0, 76.0, 60.0, 116.0], 0),
        ],
    ];
    let colours = [[1.0f32, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]];
    let mut data = vec![0.0f32; 2 * 3 * SIZE * SIZE];
    let mut seed = 12345u32;
    for (i, objs) in objects.iter().enumerate() {
        for c in 0..3 {
            for y in 0..SIZE {
                for x in 0..SIZE {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    let noise = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                    let mut v = 0.3 * noise;
                    for (b, cls) in objs {
                        if (x as f32) >= b[0]
                            && (x as f32) < b[2]
                            && (y as f32) >= b[1]
                            && (y as f32) < b[3]
                        {
                            v = colours[*cls][c] + 0.1 * noise;
                        }
                    }
                    data[((i * 3 + c) * SIZE + y) * SIZE + x] = v;
                }
            }
        }
    }
    let metas = objects
        .iter()
        .enumerate()
        .map(|(i, objs)| {
            ImageMeta::new(
                i as u64,
                SIZE,
                SIZE,
                objs.iter().map(|(b, _)| *b).collect(),
                objs.iter().map(|(_, c)| *c).collect(),
            )
        })
        .collect();
    Batch {
        images: Tensor::from_data(TensorData::new(data, [2, 3, SIZE, SIZE]), device),
        metas,
    }
}

fn tiny(kind: HeadKind) -> DetectorConfig {
    let mut cfg = DetectorConfig::preset(kind, 18, 3);
    cfg.backbone.width_mult = 0.25;
    cfg.backbone.frozen_stages = -1;
    cfg.neck.out_channels = 32;
    match &mut cfg.head {
        HeadConfig::Gfl(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs, h.gn_groups) = (32, 32, 2, 8);
        }
        HeadConfig::Retinanet(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs) = (32, 32, 2);
        }
        HeadConfig::Fcos(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs, h.gn_groups) = (32, 32, 2, 8);
        }
        HeadConfig::Atss(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs, h.gn_groups) = (32, 32, 2, 8);
        }
    }
    cfg
}

/// COCO ground truth of the scene, for the evaluator.
fn scene_gt(metas: &[ImageMeta]) -> CocoDataset {
    let mut ds = CocoDataset {
        categories: (0..3)
            .map(|i| CocoCategory {
                id: i + 1,
                name: format!("c{i}"),
            })
            .collect(),
        ..Default::default()
    };
    for m in metas {
        ds.images.push(CocoImage {
            id: m.image_id,
            file_name: format!("{}.png", m.image_id),
            width: SIZE as u32,
            height: SIZE as u32,
        });
        for (b, &l) in m.gt_boxes.iter().zip(&m.gt_labels) {
            let bbox = [
                b[0] as f64,
                b[1] as f64,
                (b[2] - b[0]) as f64,
                (b[3] - b[1]) as f64,
            ];
            ds.annotations.push(CocoAnnotation {
                id: ds.annotations.len() as u64 + 1,
                image_id: m.image_id,
                category_id: l as u64 + 1,
                bbox,
                area: bbox[2] * bbox[3],
                iscrowd: 0,
            });
        }
    }
    ds
}

fn overfit(kind: HeadKind, steps: usize) {
    let device = Default::default();
    let batch = scene::<FlexAutodiff>(&device);
    // burn's RNG is process-wide and tests run on parallel threads: seed and
    // initialise every (lazy) parameter under a lock so each test starts from
    // the same weights whatever the others do.
    let mut det = {
        static INIT: Mutex<()> = Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
        <FlexAutodiff as Backend>::seed(&device, 7);
        let det = tiny(kind).init::<FlexAutodiff>(&device).unwrap();
        materialize(&det);
        det
    };
    let mut optim = AdamConfig::new().init();
    let mut last = f32::NAN;
    for step in 0..steps {
        let (d, out) = train_step(det, &mut optim, &GtObjective, &batch, 2e-3, None);
        det = d;
        let out = out.unwrap();
        last = out.total;
        if step % 25 == 0 {
            eprintln!("{kind:?} step {step}: {:?}", out.losses);
        }
    }
    let eval = det.valid();
    let eval_batch =
        scene::<<FlexAutodiff as burn::tensor::backend::AutodiffBackend>::InnerBackend>(&device);
    let dets = eval
        .predict(&eval_batch, &TestConfig::for_kind(kind))
        .unwrap();
    let mut results = Vec::new();
    for (m, d) in eval_batch.metas.iter().zip(&dets) {
        for x in d {
            let r = x.to_coco(m.image_id, &[1, 2, 3]).unwrap();
            results.push(CocoDetection {
                image_id: r.image_id,
                category_id: r.category_id,
                bbox: r.bbox.map(f64::from),
                score: r.score as f64,
            });
        }
    }
    let stats = evaluate(&scene_gt(&eval_batch.metas), &results);
    eprintln!(
        "{kind:?}: last loss {last}, AP {:.3} AP50 {:.3}",
        stats.stats[0], stats.stats[1]
    );
    assert!(
        stats.stats[1] >= 0.9,
        "{kind:?}: AP50 {} < 0.9 after {steps} steps\n{stats}",
        stats.stats[1]
    );
}

#[test]
fn gfl_overfits() {
    overfit(HeadKind::Gfl, 150);
}

#[test]
fn retinanet_overfits() {
    overfit(HeadKind::RetinaNet, 250);
}

#[test]
fn fcos_overfits() {
    overfit(HeadKind::Fcos, 150);
}

#[test]
fn atss_overfits() {
    overfit(HeadKind::Atss, 150);
}

//! The reference backend (burn-ndarray) and the default one (burn-flex) compute
//! the same detector outputs and losses for the same weights and inputs.

use burn::module::Module;
use burn::prelude::*;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::TensorData;
use crosskd_sdk::HeadKind;
use crosskd_trainer::backend::{Flex, NdArray};
use crosskd_trainer::data::{Batch, ImageMeta};
use crosskd_trainer::model::detector::{Detector, DetectorConfig};
use crosskd_trainer::model::head::HeadConfig;

fn tiny(kind: HeadKind) -> DetectorConfig {
    let mut cfg = DetectorConfig::preset(kind, 18, 4);
    cfg.backbone.width_mult = 0.25;
    cfg.neck.out_channels = 16;
    match &mut cfg.head {
        HeadConfig::Gfl(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs, h.gn_groups) = (16, 16, 2, 4)
        }
        HeadConfig::Retinanet(h) => (h.in_channels, h.feat_channels, h.stacked_convs) = (16, 16, 2),
        HeadConfig::Fcos(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs, h.gn_groups) = (16, 16, 2, 4)
        }
        HeadConfig::Atss(h) => {
            (h.in_channels, h.feat_channels, h.stacked_convs, h.gn_groups) = (16, 16, 2, 4)
        }
    }
    cfg
}

fn batch<B: Backend>(device: &B::Device) -> Batch<B> {
    let n = 2 * 3 * 96 * 64;
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Batch {
        images: Tensor::from_data(TensorData::new(data, [2, 3, 96, 64]), device),
        metas: vec![
            ImageMeta::new(
                0,
                96,
                64,
                vec![[4.0, 8.0, 40.0, 60.0], [30.0, 50.0, 62.0, 90.0]],
                vec![1, 3],
            ),
            ImageMeta::new(1, 70, 64, vec![[10.0, 10.0, 50.0, 30.0]], vec![0]),
        ],
    }
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

#[test]
fn flex_and_ndarray_agree() {
    for kind in [
        HeadKind::Gfl,
        HeadKind::RetinaNet,
        HeadKind::Fcos,
        HeadKind::Atss,
    ] {
        let cfg = tiny(kind);
        // Parameters initialise lazily, and a clone of an uninitialised module
        // initialises independently: take the record from the module itself and
        // load the same bytes into both backends.
        let recorder = BinBytesRecorder::<FullPrecisionSettings>::default();
        let flex_device = Default::default();
        let fresh: Detector<Flex> = cfg.init(&flex_device).unwrap();
        let bytes = recorder.record(fresh.into_record(), ()).unwrap();
        let flex: Detector<Flex> = cfg
            .init(&flex_device)
            .unwrap()
            .load_record(recorder.load(bytes.clone(), &flex_device).unwrap());
        let nd_device = Default::default();
        let nd: Detector<NdArray> = cfg
            .init(&nd_device)
            .unwrap()
            .load_record(recorder.load(bytes, &nd_device).unwrap());

        let bf = batch::<Flex>(&flex_device);
        let bn = batch::<NdArray>(&nd_device);
        for (a, b) in flex
            .forward(bf.images.clone())
            .into_iter()
            .zip(nd.forward(bn.images.clone()))
        {
            for (x, y) in [
                (host(a.cls_score), host(b.cls_score)),
                (host(a.bbox_pred), host(b.bbox_pred)),
            ] {
                let err = x
                    .iter()
                    .zip(&y)
                    .map(|(p, q)| (p - q).abs() / (1.0 + q.abs()))
                    .fold(0.0f32, f32::max);
                assert!(err < 1e-4, "{kind:?}: outputs differ by {err}");
            }
        }
        let lf = flex.loss(&bf).unwrap().values();
        let ln = nd.loss(&bn).unwrap().values();
        for ((name, a), (_, b)) in lf.iter().zip(&ln) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{kind:?} {name}: flex {a} vs ndarray {b}"
            );
        }
    }
}

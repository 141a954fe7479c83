//! Weights between the ONNX file and the burn [`TrainNet`]: every trainable
//! tensor paired with the initializer name(s) the exporter gave it, so loading
//! and writing back walk the same list.
//!
//! Names follow `crosskd export` (trainer `export/detector_graph.rs`): a conv's
//! `{path}.weight` / `{path}.bias` once for all levels; a tower GroupNorm's
//! affine as `head.{tower}.{i}.l{level}.gn.weight|bias` (`[C, 1, 1]`, one copy
//! per level); a level's Scale as the scalar `head.scales.{level}`.

use std::collections::HashMap;

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use tract_onnx::pb::{ModelProto, TensorProto};

use super::net::TrainNet;
use super::FinetuneError;
use crate::nn::heads::Tower;
use crate::nn::layers::Scale;
use crate::nn::Head;
use crate::onnx::tensor::tensor_f32;

/// A trainable tensor of any rank, seen as a flat f32 buffer.
pub enum Slot<'a, B: Backend> {
    /// Conv weight `[O, I, kh, kw]`.
    W4(&'a mut Param<Tensor<B, 4>>),
    /// Bias, norm affine or scale `[C]`.
    V1(&'a mut Param<Tensor<B, 1>>),
}

impl<B: Backend> Slot<'_, B> {
    fn numel(&self) -> usize {
        match self {
            Slot::W4(p) => p.val().shape().num_elements(),
            Slot::V1(p) => p.val().shape().num_elements(),
        }
    }

    fn read(&self) -> Vec<f32> {
        let data = match self {
            Slot::W4(p) => p.val().into_data(),
            Slot::V1(p) => p.val().into_data(),
        };
        data.convert::<f32>().to_vec().unwrap_or_default()
    }

    fn write(&mut self, values: Vec<f32>, device: &B::Device) {
        match self {
            Slot::W4(p) => {
                let shape = p.val().shape();
                **p = Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device));
            }
            Slot::V1(p) => {
                let shape = p.val().shape();
                **p = Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device));
            }
        }
    }
}

/// Calls `f(names, slot)` for every trainable tensor of `net`; `names` lists
/// every initializer holding that tensor (the first is read when loading).
pub fn visit<B: Backend>(
    net: &mut TrainNet<B>,
    num_levels: usize,
    f: &mut Visitor<'_, B>,
) -> Result<(), FinetuneError> {
    if let Some(neck) = net.neck.as_mut() {
        for (i, c) in neck.lateral_convs.iter_mut().enumerate() {
            conv(&format!("neck.lateral_convs.{i}"), c, f)?;
        }
        for (i, c) in neck.fpn_convs.iter_mut().enumerate() {
            conv(&format!("neck.fpn_convs.{i}"), c, f)?;
        }
    }
    let (cls, reg, preds, scales): HeadParts<'_, B> = match &mut net.head {
        Head::Gfl(h) => (
            &mut h.cls_convs,
            &mut h.reg_convs,
            vec![("gfl_cls", &mut h.gfl_cls), ("gfl_reg", &mut h.gfl_reg)],
            Some(&mut h.scales),
        ),
        Head::Atss(h) => (
            &mut h.cls_convs,
            &mut h.reg_convs,
            vec![
                ("atss_cls", &mut h.atss_cls),
                ("atss_reg", &mut h.atss_reg),
                ("atss_centerness", &mut h.atss_centerness),
            ],
            Some(&mut h.scales),
        ),
        Head::RetinaNet(h) => (
            &mut h.cls_convs,
            &mut h.reg_convs,
            vec![
                ("retina_cls", &mut h.retina_cls),
                ("retina_reg", &mut h.retina_reg),
            ],
            None,
        ),
        Head::Fcos(h) => (
            &mut h.cls_convs,
            &mut h.reg_convs,
            vec![
                ("conv_cls", &mut h.conv_cls),
                ("conv_reg", &mut h.conv_reg),
                ("conv_centerness", &mut h.conv_centerness),
            ],
            Some(&mut h.scales),
        ),
    };
    tower("cls_convs", cls, num_levels, f)?;
    tower("reg_convs", reg, num_levels, f)?;
    for (name, c) in preds {
        conv(&format!("head.{name}"), c, f)?;
    }
    if let Some(scales) = scales {
        for (l, s) in scales.iter_mut().enumerate() {
            f(&[format!("head.scales.{l}")], Slot::V1(&mut s.scale))?;
        }
    }
    Ok(())
}

/// The towers, the named predictor convs and the level Scales of a head.
type HeadParts<'a, B> = (
    &'a mut Tower<B>,
    &'a mut Tower<B>,
    Vec<(&'static str, &'a mut Conv2d<B>)>,
    Option<&'a mut Vec<Scale<B>>>,
);

type Visitor<'f, B> = dyn FnMut(&[String], Slot<'_, B>) -> Result<(), FinetuneError> + 'f;

fn conv<B: Backend>(
    path: &str,
    c: &mut Conv2d<B>,
    f: &mut Visitor<'_, B>,
) -> Result<(), FinetuneError> {
    f(&[format!("{path}.weight")], Slot::W4(&mut c.weight))?;
    if let Some(b) = c.bias.as_mut() {
        f(&[format!("{path}.bias")], Slot::V1(b))?;
    }
    Ok(())
}

fn tower<B: Backend>(
    name: &str,
    t: &mut Tower<B>,
    num_levels: usize,
    f: &mut Visitor<'_, B>,
) -> Result<(), FinetuneError> {
    for (i, m) in t.convs.iter_mut().enumerate() {
        conv(&format!("head.{name}.{i}"), &mut m.conv, f)?;
        if let Some(gn) = m.gn.as_mut() {
            let per_level = |what: &str| -> Vec<String> {
                (0..num_levels)
                    .map(|l| format!("head.{name}.{i}.l{l}.gn.{what}"))
                    .collect()
            };
            if let Some(g) = gn.gamma.as_mut() {
                f(&per_level("weight"), Slot::V1(g))?;
            }
            if let Some(b) = gn.beta.as_mut() {
                f(&per_level("bias"), Slot::V1(b))?;
            }
        }
    }
    Ok(())
}

fn initializer_index(model: &ModelProto) -> HashMap<String, usize> {
    model
        .graph
        .as_ref()
        .map(|g| {
            g.initializer
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.clone(), i))
                .collect()
        })
        .unwrap_or_default()
}

/// Loads every trainable tensor of `net` from `model`'s initializers.
pub fn load<B: Backend>(
    net: &mut TrainNet<B>,
    model: &ModelProto,
    num_levels: usize,
    device: &B::Device,
) -> Result<(), FinetuneError> {
    let index = initializer_index(model);
    let inits: &[TensorProto] = model
        .graph
        .as_ref()
        .map(|g| g.initializer.as_slice())
        .unwrap_or_default();
    visit(net, num_levels, &mut |names, mut slot| {
        let name = &names[0];
        let t = index.get(name).map(|&i| &inits[i]).ok_or_else(|| {
            FinetuneError::Model(format!(
                "initializer `{name}` is missing: the graph is not a `crosskd export` of this head"
            ))
        })?;
        let values = tensor_f32(t).map_err(|e| FinetuneError::Model(format!("`{name}`: {e}")))?;
        if values.len() != slot.numel() {
            return Err(FinetuneError::Model(format!(
                "initializer `{name}` has {} values, the head config needs {}",
                values.len(),
                slot.numel()
            )));
        }
        slot.write(values, device);
        Ok(())
    })
}

/// Writes every trainable tensor of `net` into `model`'s initializers (all copies).
pub fn store<B: Backend>(
    net: &mut TrainNet<B>,
    model: &mut ModelProto,
    num_levels: usize,
) -> Result<(), FinetuneError> {
    let index = initializer_index(model);
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| FinetuneError::Model("the model has no graph".into()))?;
    visit(net, num_levels, &mut |names, slot| {
        let values = slot.read();
        for name in names {
            let &i = index
                .get(name)
                .ok_or_else(|| FinetuneError::Model(format!("initializer `{name}` is missing")))?;
            let t = &mut graph.initializer[i];
            t.raw_data.clear();
            t.float_data = values.clone();
        }
        Ok(())
    })
}

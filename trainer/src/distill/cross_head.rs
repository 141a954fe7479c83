//! The cross-head path (spec §1.3–1.5): the student's tower feature held at
//! conv `k` (after conv + norm, before ReLU) is aligned to the teacher's
//! per-channel statistics at the same point, re-activated, and run through the
//! teacher's remaining tower convs, predictors and Scale.

use burn::prelude::*;
use burn::tensor::activation::relu;

use super::adapter::{adapt, Adapters};
use crate::losses::align_to;
use crate::model::heads::{DenseHead, LevelOutput, TowerTrace};

/// Tower features of one level at the hold point.
#[derive(Debug, Clone)]
pub struct Held<B: Backend> {
    /// Cls-tower feature.
    pub cls: Tensor<B, 4>,
    /// Reg-tower feature.
    pub reg: Tensor<B, 4>,
}

impl<B: Backend> Held<B> {
    /// The hold point `k` of a traced level: conv `k`'s pre-activation output,
    /// or the FPN feature `input` itself when `k = 0`.
    ///
    /// # Panics
    /// If `k` exceeds the tower depth (checked when the distiller is built).
    pub fn at(trace: &TowerTrace<B>, input: &Tensor<B, 4>, k: usize) -> Self {
        if k == 0 {
            Self {
                cls: input.clone(),
                reg: input.clone(),
            }
        } else {
            Self {
                cls: trace.cls[k - 1].clone(),
                reg: trace.reg[k - 1].clone(),
            }
        }
    }
}

/// Cross-head predictions of one level: `student` features (adapted to the
/// teacher's width when an adapter exists) aligned to `teacher`'s statistics,
/// ReLU'd (when `k > 0`, replacing the skipped activation), then the teacher
/// head's layers `k..` and predictors of `level`.
///
/// Gradients reach the student feature (and the adapters) through the
/// teacher's frozen layers; the teacher statistics are constants.
pub fn cross_head_level<B: Backend, H: DenseHead<B>>(
    teacher_head: &H,
    student: Held<B>,
    teacher: &Held<B>,
    adapters: &Adapters<B>,
    k: usize,
    level: usize,
) -> LevelOutput<B> {
    let enter = |s: Tensor<B, 4>, t: &Tensor<B, 4>, adapter| {
        let aligned = align_to(adapt(adapter, s), t.clone());
        if k > 0 {
            relu(aligned)
        } else {
            aligned
        }
    };
    let cls = enter(student.cls, &teacher.cls, &adapters.cls);
    let reg = enter(student.reg, &teacher.reg, &adapters.reg);
    teacher_head.forward_level_from(cls, reg, k, level)
}

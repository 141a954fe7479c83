//! Calibration: run the fp32 graph in tract over preprocessed calibration
//! images with every tensor to be quantized exposed as an extra output, and
//! turn the observed values into a range per tensor.
//!
//! * `minmax`: the observed `[min, max]`;
//! * `percentile`: clip both tails at `p` (default 99.99 %) of the histogram;
//! * `entropy`: the range (shrunk towards zero, both ends together) whose
//!   256-level quantization keeps the histogram closest in KL divergence (TensorRT's
//!   calibration, generalised to asymmetric ranges).
//!
//! Histogram methods take two passes (range, then histogram), so images are
//! fetched twice through a closure instead of being held in memory.

use std::collections::HashMap;

use tract_onnx::pb::{ModelProto, ValueInfoProto};

use super::{CalibMethod, QuantizeError};
use crate::onnx::runner::{NamedOutput, OnnxRunner};

/// Histogram bins per tensor.
const BINS: usize = 2048;

/// Observed range of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Smallest value.
    pub lo: f32,
    /// Largest value.
    pub hi: f32,
}

/// A fixed-range histogram.
#[derive(Debug, Clone)]
struct Histogram {
    lo: f32,
    hi: f32,
    counts: Vec<f64>,
}

impl Histogram {
    fn new(r: Range) -> Self {
        Self {
            lo: r.lo.min(0.0),
            hi: r.hi.max(0.0),
            counts: vec![0.0; BINS],
        }
    }

    fn bin_width(&self) -> f32 {
        ((self.hi - self.lo) / BINS as f32).max(f32::MIN_POSITIVE)
    }

    fn add(&mut self, data: &[f32]) {
        let w = self.bin_width();
        for &v in data {
            let i = ((v - self.lo) / w) as isize;
            self.counts[i.clamp(0, BINS as isize - 1) as usize] += 1.0;
        }
    }

    /// Value of bin edge `i`.
    fn edge(&self, i: usize) -> f32 {
        self.lo + i as f32 * self.bin_width()
    }

    /// Clip `(100 - p) / 100` of the mass from each tail.
    fn percentile(&self, p: f64) -> Range {
        let total: f64 = self.counts.iter().sum();
        let tail = total * (1.0 - p / 100.0);
        let mut acc = 0.0;
        let mut lo_bin = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            if acc > tail {
                lo_bin = i;
                break;
            }
        }
        acc = 0.0;
        let mut hi_bin = BINS - 1;
        for (i, c) in self.counts.iter().enumerate().rev() {
            acc += c;
            if acc > tail {
                hi_bin = i;
                break;
            }
        }
        Range {
            lo: self.edge(lo_bin).min(0.0),
            hi: self.edge(hi_bin + 1).max(0.0),
        }
    }

    /// The clipping range minimising KL(P || Q) over ranges `[lo·t, hi·t]`.
    fn entropy(&self) -> Range {
        let zero_bin = (((0.0 - self.lo) / self.bin_width()) as usize).min(BINS - 1);
        let neg = zero_bin; // bins below zero
        let pos = BINS - zero_bin; // bins from zero up
        let levels = 256usize;
        let mut best = (f64::INFINITY, 1.0f64);
        // Candidate fractions of the full range, from 1/4 to all of it: clipping
        // harder than that measurably hurt box regression outputs, which carry
        // information in their tails.
        for step in 32..=128 {
            let t = step as f64 / 128.0;
            let (a, b) = (
                zero_bin - ((neg as f64 * t).round() as usize).min(neg),
                zero_bin + ((pos as f64 * t).round() as usize).clamp(1, pos),
            );
            if b - a < levels {
                continue;
            }
            // P: the clipped histogram, outliers folded into the edge bins.
            let mut p: Vec<f64> = self.counts[a..b].to_vec();
            let n = p.len();
            p[0] += self.counts[..a].iter().sum::<f64>();
            p[n - 1] += self.counts[b..].iter().sum::<f64>();
            // Q: P merged into `levels` buckets, spread back over the non-empty bins.
            let mut q = vec![0.0f64; n];
            for k in 0..levels {
                let (s, e) = (
                    k * n / levels,
                    ((k + 1) * n / levels).max(k * n / levels + 1),
                );
                let mass: f64 = self.counts[a + s..a + e].iter().sum();
                let nonzero = self.counts[a + s..a + e]
                    .iter()
                    .filter(|c| **c > 0.0)
                    .count();
                if nonzero > 0 {
                    for (qi, &c) in q[s..e].iter_mut().zip(&self.counts[a + s..a + e]) {
                        if c > 0.0 {
                            *qi = mass / nonzero as f64;
                        }
                    }
                }
            }
            let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
            if ps <= 0.0 || qs <= 0.0 {
                continue;
            }
            let kl: f64 = p
                .iter()
                .zip(&q)
                .filter(|(p, _)| **p > 0.0)
                .map(|(p, q)| {
                    let (p, q) = (p / ps, (q / qs).max(1e-12));
                    p * (p / q).ln()
                })
                .sum();
            if kl < best.0 {
                best = (kl, t);
            }
        }
        let t = best.1 as f32;
        Range {
            lo: self.lo * t,
            hi: self.hi * t,
        }
    }
}

/// A copy of `model` whose outputs are `tensors` (plus nothing else).
fn probe_model(model: &ModelProto, tensors: &[String]) -> ModelProto {
    let mut m = model.clone();
    if let Some(g) = m.graph.as_mut() {
        // No type at all: tract infers it (an untyped-shape `TypeProto` would read as a scalar).
        g.output = tensors
            .iter()
            .map(|name| ValueInfoProto {
                name: name.clone(),
                ..Default::default()
            })
            .collect();
    }
    m
}

/// Ranges of `tensors` over `num_images` inputs given by `input(i)`.
///
/// `progress(done, total)` is called after each image of each pass.
pub fn calibrate(
    model: &ModelProto,
    tensors: &[String],
    num_images: usize,
    input: &mut dyn FnMut(usize) -> Result<Vec<f32>, QuantizeError>,
    method: CalibMethod,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<HashMap<String, Range>, QuantizeError> {
    if num_images == 0 {
        return Err(QuantizeError::NoCalibrationImages(
            "the calibration set is empty".into(),
        ));
    }
    // A graph input cannot double as an output (tract would forget its shape):
    // its values are the calibration input itself.
    let inputs: Vec<String> = model
        .graph
        .iter()
        .flat_map(|g| g.input.iter().map(|i| i.name.clone()))
        .filter(|n| tensors.contains(n))
        .collect();
    let probed: Vec<String> = tensors
        .iter()
        .filter(|t| !inputs.contains(t))
        .cloned()
        .collect();
    let runner = OnnxRunner::from_proto(&probe_model(model, &probed))?;
    let observe = |x: Vec<f32>| -> Result<Vec<NamedOutput>, QuantizeError> {
        let mut outs = runner.run(&x)?;
        outs.extend(inputs.iter().map(|name| NamedOutput {
            name: name.clone(),
            shape: vec![x.len()],
            data: x.clone(),
        }));
        Ok(outs)
    };
    let passes = if method == CalibMethod::MinMax { 1 } else { 2 };
    let total = passes * num_images;
    let mut ranges: HashMap<String, Range> = HashMap::new();
    for i in 0..num_images {
        for out in observe(input(i)?)? {
            let (lo, hi) = out
                .data
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                    (l.min(v), h.max(v))
                });
            if !(lo.is_finite() && hi.is_finite()) {
                return Err(QuantizeError::NonFinite(out.name));
            }
            let r = ranges.entry(out.name).or_insert(Range { lo, hi });
            r.lo = r.lo.min(lo);
            r.hi = r.hi.max(hi);
        }
        progress(i + 1, total);
    }
    if passes == 1 {
        return Ok(ranges);
    }
    let mut hists: HashMap<String, Histogram> = ranges
        .iter()
        .map(|(k, r)| (k.clone(), Histogram::new(*r)))
        .collect();
    for i in 0..num_images {
        for out in observe(input(i)?)? {
            if let Some(h) = hists.get_mut(&out.name) {
                h.add(&out.data);
            }
        }
        progress(num_images + i + 1, total);
    }
    Ok(hists
        .into_iter()
        .map(|(k, h)| {
            let r = match method {
                CalibMethod::Percentile(p) => h.percentile(p),
                _ => h.entropy(),
            };
            (k, r)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(data: &[f32]) -> Histogram {
        let lo = data.iter().cloned().fold(f32::INFINITY, f32::min);
        let hi = data.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut h = Histogram::new(Range { lo, hi });
        h.add(data);
        h
    }

    #[test]
    fn percentile_clips_rare_outliers() {
        let mut data: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        data.push(50.0);
        let r = hist(&data).percentile(99.99);
        assert!(r.hi < 1.1 && r.hi > 0.9, "{r:?}");
        assert_eq!(r.lo, 0.0);
    }

    #[test]
    fn entropy_shrinks_a_long_tail_and_keeps_a_flat_range() {
        // Flat on [0, 1]: keep (nearly) all of it.
        let data: Vec<f32> = (0..50_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        let r = hist(&data).entropy();
        assert!(r.hi > 0.9, "{r:?}");
        // Mass near zero with a few huge values: clip well below the max.
        let mut data: Vec<f32> = (0..50_000).map(|i| (i % 100) as f32 / 100.0).collect();
        data.extend([100.0; 3]);
        let r = hist(&data).entropy();
        assert!(r.hi < 60.0, "{r:?}");
    }
}

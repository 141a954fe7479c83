//! Batching: a deterministic, seeded order (optionally grouped by aspect
//! ratio), parallel decoding on a worker pool, and collation into a padded
//! batch tensor.

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::TensorData;
use crosskd_sdk::preprocess::{pad_into, pad_to_multiple};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

use super::batch::Batch;
use super::dataset::DetectionDataset;
use super::pipeline::{load_sample, PipelineConfig, Sample};

/// How batches are formed.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch.
    pub batch_size: usize,
    /// Shuffle every epoch (seeded).
    pub shuffle: bool,
    /// Batch landscape and portrait images separately (MMDet's `AspectRatioBatchSampler`).
    pub aspect_grouping: bool,
    /// Drop the last incomplete batch.
    pub drop_last: bool,
    /// Decoding threads.
    pub workers: usize,
    /// Seed of the order and of the random transforms.
    pub seed: u64,
}

impl LoaderConfig {
    /// Sequential, unshuffled batches (evaluation).
    pub fn sequential(batch_size: usize, workers: usize) -> Self {
        Self {
            batch_size,
            shuffle: false,
            aspect_grouping: false,
            drop_last: false,
            workers,
            seed: 0,
        }
    }
}

/// A decoded, transformed batch (before collation) and the images skipped in it.
#[derive(Debug)]
pub struct LoadedBatch {
    /// Usable samples in order.
    pub samples: Vec<Sample>,
    /// `(path, reason)` of images that could not be decoded.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Iterates a [`DetectionDataset`] in batches.
pub struct DataLoader {
    dataset: Arc<DetectionDataset>,
    pipeline: PipelineConfig,
    config: LoaderConfig,
    pool: rayon::ThreadPool,
}

/// Mix a seed with two counters (SplitMix64 finaliser) for per-sample RNGs.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl DataLoader {
    /// A loader over `dataset` with `pipeline` transforms.
    pub fn new(
        dataset: Arc<DetectionDataset>,
        pipeline: PipelineConfig,
        config: LoaderConfig,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(config.batch_size > 0, "batch size must be positive");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.workers.max(1))
            .thread_name(|i| format!("crosskd-loader-{i}"))
            .build()?;
        Ok(Self {
            dataset,
            pipeline,
            config,
            pool,
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &DetectionDataset {
        &self.dataset
    }

    /// Image indices of every batch of `epoch`, deterministic for a seed.
    pub fn batch_indices(&self, epoch: usize) -> Vec<Vec<usize>> {
        let n = self.dataset.len();
        let bs = self.config.batch_size;
        let mut rng = rand::rngs::StdRng::seed_from_u64(mix(self.config.seed, epoch as u64, 0));
        let mut order: Vec<usize> = (0..n).collect();
        if self.config.shuffle {
            order.shuffle(&mut rng);
        }
        let groups: Vec<Vec<usize>> = if self.config.aspect_grouping {
            let recs = &self.dataset.records;
            let (wide, tall): (Vec<usize>, Vec<usize>) = order
                .iter()
                .partition(|&&i| recs[i].width >= recs[i].height);
            vec![wide, tall]
        } else {
            vec![order]
        };
        let mut batches: Vec<Vec<usize>> = groups
            .iter()
            .flat_map(|g| g.chunks(bs).map(<[usize]>::to_vec).collect::<Vec<_>>())
            .filter(|b| !self.config.drop_last || b.len() == bs)
            .collect();
        if self.config.shuffle && self.config.aspect_grouping {
            batches.shuffle(&mut rng);
        }
        batches
    }

    /// Number of batches per epoch.
    pub fn num_batches(&self) -> usize {
        self.batch_indices(0).len()
    }

    /// Decode and transform the images of one batch in parallel.
    pub fn load(&self, epoch: usize, indices: &[usize]) -> LoadedBatch {
        let results: Vec<_> = self.pool.install(|| {
            indices
                .par_iter()
                .map(|&i| {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(mix(
                        self.config.seed,
                        epoch as u64,
                        i as u64 + 1,
                    ));
                    load_sample(&self.dataset.records[i], &self.pipeline, &mut rng)
                        .map_err(|e| (self.dataset.records[i].path.clone(), e.to_string()))
                })
                .collect()
        });
        let mut out = LoadedBatch {
            samples: Vec::with_capacity(indices.len()),
            skipped: Vec::new(),
        };
        for r in results {
            match r {
                Ok(s) => out.samples.push(s),
                Err(e) => out.skipped.push(e),
            }
        }
        out
    }

    /// All batches of `epoch`, loaded one after another.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = LoadedBatch> + '_ {
        self.batch_indices(epoch)
            .into_iter()
            .map(move |b| self.load(epoch, &b))
    }

    /// The pad divisor of the pipeline.
    pub fn pad_divisor(&self) -> usize {
        self.pipeline.pad_divisor
    }
}

/// Pad samples to the batch's largest size (rounded up to `divisor`) and stack them.
///
/// # Panics
/// If `samples` is empty.
pub fn collate<B: Backend>(samples: Vec<Sample>, divisor: usize, device: &B::Device) -> Batch<B> {
    assert!(!samples.is_empty(), "cannot collate an empty batch");
    let ph = pad_to_multiple(samples.iter().map(|s| s.h).max().unwrap_or(1), divisor);
    let pw = pad_to_multiple(samples.iter().map(|s| s.w).max().unwrap_or(1), divisor);
    let per = 3 * ph * pw;
    let mut data = vec![0.0f32; samples.len() * per];
    data.par_chunks_mut(per)
        .zip(samples.par_iter())
        .for_each(|(dst, s)| pad_into(&s.chw, s.h, s.w, ph, pw, dst));
    let n = samples.len();
    Batch {
        images: Tensor::from_data(TensorData::new(data, [n, 3, ph, pw]), device),
        metas: samples.into_iter().map(|s| s.meta).collect(),
    }
}

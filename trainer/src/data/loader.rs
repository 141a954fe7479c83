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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::backend::Flex;
    use crate::data::coco::{CocoAnnotation, CocoCategory, CocoDataset, CocoImage};
    use crate::data::ImageMeta;

    /// `n` PNGs of varied sizes (landscape and portrait) and content, with one
    /// box each, as a dataset. Returns the folder too (delete it after use).
    fn dataset(name: &str, n: usize) -> (DetectionDataset, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("crosskd-loader-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut gt = CocoDataset {
            categories: vec![CocoCategory {
                id: 1,
                name: "a".into(),
            }],
            ..CocoDataset::default()
        };
        for i in 0..n {
            let (w, h) = if i % 3 == 0 { (40, 64) } else { (72, 48) };
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 5 + i as u32 * 17) as u8, (y * 3) as u8, (x ^ y) as u8])
            });
            let file_name = format!("{i}.png");
            img.save(dir.join(&file_name)).unwrap();
            let id = i as u64 + 1;
            gt.images.push(CocoImage {
                id,
                file_name,
                width: w,
                height: h,
            });
            gt.annotations.push(CocoAnnotation {
                id,
                image_id: id,
                category_id: 1,
                bbox: [2.0 + i as f64, 3.0, 20.0, 15.0],
                area: 300.0,
                iscrowd: 0,
            });
        }
        let (ds, _) = DetectionDataset::from_coco(&gt, Path::new("gt.json"), &dir, true).unwrap();
        (ds, dir)
    }

    /// Random scale and flip, shuffled and aspect-grouped: every seeded draw used.
    fn pipeline() -> PipelineConfig {
        PipelineConfig {
            short_edge_range: Some((32, 56)),
            ..PipelineConfig::train((96, 64))
        }
    }

    fn config(workers: usize, seed: u64) -> LoaderConfig {
        LoaderConfig {
            batch_size: 3,
            shuffle: true,
            aspect_grouping: true,
            drop_last: false,
            workers,
            seed,
        }
    }

    /// One loaded sample, comparable: pixels, size and meta.
    type Drawn = (Vec<f32>, usize, usize, ImageMeta);

    /// Everything the loader produced for two epochs: each batch's indices
    /// and samples.
    fn run(loader: &DataLoader) -> Vec<(Vec<usize>, Vec<Drawn>)> {
        (0..2)
            .flat_map(|epoch| {
                loader.batch_indices(epoch).into_iter().map(move |idx| {
                    let loaded = loader.load(epoch, &idx);
                    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
                    let samples = loaded
                        .samples
                        .into_iter()
                        .map(|s| (s.chw, s.h, s.w, s.meta))
                        .collect();
                    (idx, samples)
                })
            })
            .collect()
    }

    #[test]
    fn same_seed_gives_the_same_batches_with_1_and_2_workers() {
        let (ds, dir) = dataset("determinism", 8);
        let ds = Arc::new(ds);
        let loader =
            |workers, seed| DataLoader::new(ds.clone(), pipeline(), config(workers, seed)).unwrap();
        let one = run(&loader(1, 7));
        let two = run(&loader(2, 7));
        // Every sample is drawn from its own RNG seeded by (seed, epoch, index),
        // so the thread that decodes it cannot change it.
        assert!(one == two, "1 and 2 workers must produce identical batches");
        assert_eq!(one.iter().map(|b| b.0.len()).sum::<usize>(), 16);
        // Batches never mix landscape and portrait images (aspect grouping).
        for (idx, _) in &one {
            let wide: Vec<bool> = idx
                .iter()
                .map(|&i| ds.records[i].width >= ds.records[i].height)
                .collect();
            assert!(wide.iter().all(|&w| w == wide[0]), "{idx:?}");
        }
        // The seed matters (a sanity check that the comparison is not vacuous).
        let other = run(&loader(2, 8));
        assert!(one != other);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn unreadable_and_wrongly_sized_images_are_skipped_with_their_path() {
        let (mut ds, dir) = dataset("skip", 3);
        std::fs::write(&ds.records[1].path, b"\x89PNG\r\n\x1a\ntruncated").unwrap();
        // Declared 73 wide, but the file is 72 wide.
        ds.records[2].width += 1;
        let loader = DataLoader::new(
            Arc::new(ds),
            PipelineConfig::test((96, 64)),
            LoaderConfig::sequential(3, 2),
        )
        .unwrap();
        let b = loader.load(0, &[0, 1, 2]);
        assert_eq!(b.samples.len(), 1);
        assert_eq!(b.samples[0].meta.image_id, 1);
        let skipped: Vec<(String, &str)> = b
            .skipped
            .iter()
            .map(|(p, why)| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    why.as_str(),
                )
            })
            .collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(skipped[0].0, "1.png");
        assert!(skipped[0].1.contains("cannot decode"), "{}", skipped[0].1);
        assert_eq!(skipped[1].0, "2.png");
        assert!(
            skipped[1].1.contains("`width` = 73") && skipped[1].1.contains("72x48"),
            "{}",
            skipped[1].1
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    fn sample(h: usize, w: usize, value: f32) -> Sample {
        Sample {
            chw: vec![value; 3 * h * w],
            h,
            w,
            meta: ImageMeta::default(),
        }
    }

    #[test]
    fn collation_pads_to_a_multiple_of_32_bottom_right_with_zeros() {
        // Largest h 33, largest w 64: padded to (ceil(33/32)·32, 64) = (64, 64).
        let batch = collate::<Flex>(
            vec![sample(33, 50, 1.0), sample(20, 64, 2.0)],
            32,
            &Default::default(),
        );
        assert_eq!(batch.images.dims(), [2, 3, 64, 64]);
        let v = batch.images.into_data().to_vec::<f32>().unwrap();
        let at = |n: usize, c: usize, y: usize, x: usize| v[((n * 3 + c) * 64 + y) * 64 + x];
        // Image 0: 33×50 of ones at the top left, zeros to the right and below.
        assert_eq!(
            (at(0, 2, 32, 49), at(0, 0, 32, 50), at(0, 0, 33, 0)),
            (1.0, 0.0, 0.0)
        );
        // Image 1: 20×64 of twos, zeros from row 20.
        assert_eq!((at(1, 1, 19, 63), at(1, 1, 20, 0)), (2.0, 0.0));
        let sum: f32 = v.iter().sum();
        assert_eq!(sum, 3.0 * (33.0 * 50.0 + 2.0 * 20.0 * 64.0));
        // Exact multiples stay as they are.
        let batch = collate::<Flex>(vec![sample(32, 96, 0.5)], 32, &Default::default());
        assert_eq!(batch.images.dims(), [1, 3, 32, 96]);
    }
}

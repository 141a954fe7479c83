//! `crosskd bench loader`: decode + transform throughput of the data loader.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::data::dataset::DetectionDataset;
use crate::data::loader::{DataLoader, LoaderConfig};
use crate::data::pipeline::PipelineConfig;

/// Images per second at one worker count.
#[derive(Debug, Clone, Serialize)]
pub struct LoaderThroughput {
    /// Decoding threads.
    pub workers: usize,
    /// Images decoded and transformed.
    pub images: usize,
    /// Throughput.
    pub images_per_s: f64,
}

/// Load `images` images (cycling the dataset) with each worker count in
/// `workers`, training transforms at `scale`, and report images/s.
pub fn run_loader_bench(
    ann: &Path,
    image_dir: &Path,
    scale: (usize, usize),
    batch_size: usize,
    images: usize,
    workers: &[usize],
) -> anyhow::Result<Vec<LoaderThroughput>> {
    let (ds, report) = DetectionDataset::from_coco_file(ann, image_dir, false)?;
    eprintln!("{report}");
    let ds = Arc::new(ds);
    let mut out = Vec::new();
    for &w in workers {
        let loader = DataLoader::new(
            ds.clone(),
            PipelineConfig::train(scale),
            LoaderConfig {
                batch_size,
                shuffle: true,
                aspect_grouping: false,
                drop_last: false,
                workers: w,
                seed: 0,
            },
        )?;
        // Warm the page cache so the first worker count is not penalised.
        let _ = loader.load(0, &[0]);
        let t = Instant::now();
        let mut done = 0;
        let mut epoch = 0;
        while done < images {
            for idx in loader.batch_indices(epoch) {
                done += loader.load(epoch, &idx).samples.len();
                if done >= images {
                    break;
                }
            }
            epoch += 1;
        }
        let s = t.elapsed().as_secs_f64();
        out.push(LoaderThroughput {
            workers: w,
            images: done,
            images_per_s: done as f64 / s,
        });
    }
    Ok(out)
}

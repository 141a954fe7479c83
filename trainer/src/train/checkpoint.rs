//! Checkpoints: one self-describing file per save, written atomically
//! (temporary file, fsync, rename), holding a JSON header (configuration,
//! progress, class names), the model record and optionally the optimiser state.
//!
//! Layout: `b"CROSSKD\x01"`, then three `(u64 little-endian length, bytes)`
//! sections: header JSON, model record, optimiser record (may be empty), and
//! optionally a fourth: the record of training-only modules (distillation
//! adapters), which inference never reads.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Record, Recorder};
use serde::{Deserialize, Serialize};

use crate::model::detector::{Detector, DetectorConfig};

const MAGIC: &[u8; 8] = b"CROSSKD\x01";

/// Progress and provenance stored with the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// The detector configuration the weights belong to.
    pub model: DetectorConfig,
    /// Epochs completed.
    pub epoch: usize,
    /// Global iterations completed.
    pub iter: usize,
    /// Best validation AP so far, if evaluated.
    pub best_ap: Option<f64>,
    /// Class names, label order.
    pub class_names: Vec<String>,
    /// COCO category id per label.
    pub category_ids: Vec<u64>,
    /// The full training configuration (TOML), for resuming.
    #[serde(default)]
    pub train_config: Option<String>,
}

/// A checkpoint that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a checkpoint of this tool, or truncated.
    #[error("{path}: not a crosskd checkpoint ({why}); pass a file written by `crosskd train`/`distill`")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Weights that do not fit the configured model.
    #[error("{path}: weights do not match the model configuration: {why}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Details.
        why: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn recorder() -> BinBytesRecorder<FullPrecisionSettings> {
    BinBytesRecorder::default()
}

/// Serialise a record to bytes.
pub fn record_bytes<B: Backend, R: Record<B>>(record: R) -> Vec<u8> {
    recorder()
        .record(record, ())
        .expect("in-memory records always serialise")
}

/// Initialise every lazily initialised parameter of `module` in place.
///
/// burn creates parameters lazily, and a clone of a never-used module
/// initialises its own copy independently: without this, a record taken from a
/// clone would not hold the weights the original computes with.
pub fn materialize<B: Backend, M: Module<B>>(module: &M) {
    struct Touch;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// Write `header`, the model and (optionally) optimiser bytes atomically to `path`.
pub fn save<B: Backend>(
    path: &Path,
    header: &CheckpointHeader,
    model: &Detector<B>,
    optimizer: Option<Vec<u8>>,
) -> Result<(), CheckpointError> {
    save_with_extra(path, header, model, optimizer, None)
}

/// [`save`] plus the record bytes of training-only modules (e.g. distillation
/// adapters) in a fourth section.
pub fn save_with_extra<B: Backend>(
    path: &Path,
    header: &CheckpointHeader,
    model: &Detector<B>,
    optimizer: Option<Vec<u8>>,
    extra: Option<Vec<u8>>,
) -> Result<(), CheckpointError> {
    let head = serde_json::to_vec(header).expect("header serialises");
    materialize(model);
    let model = record_bytes::<B, _>(model.clone().into_record());
    let optim = optimizer.unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("ckpt.tmp");
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(MAGIC).map_err(io(&tmp))?;
        let extra = extra.unwrap_or_default();
        let mut parts = vec![&head, &model, &optim];
        if !extra.is_empty() {
            parts.push(&extra);
        }
        for part in parts {
            f.write_all(&(part.len() as u64).to_le_bytes())
                .map_err(io(&tmp))?;
            f.write_all(part).map_err(io(&tmp))?;
        }
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

/// The three sections of a checkpoint file.
pub struct CheckpointFile {
    /// Parsed header.
    pub header: CheckpointHeader,
    /// Model record bytes.
    pub model: Vec<u8>,
    /// Optimiser record bytes (empty when not saved).
    pub optimizer: Vec<u8>,
    /// Record bytes of training-only modules (empty when there are none).
    pub extra: Vec<u8>,
}

/// Read and check a checkpoint file.
pub fn read(path: &Path) -> Result<CheckpointFile, CheckpointError> {
    let mut f = File::open(path).map_err(io(path))?;
    let fmt = |why: &str| CheckpointError::Format {
        path: path.to_path_buf(),
        why: why.to_string(),
    };
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic)
        .map_err(|_| fmt("file too short"))?;
    if &magic != MAGIC {
        return Err(fmt("wrong magic bytes"));
    }
    let len = f.metadata().map_err(io(path))?.len();
    let mut parts = Vec::with_capacity(3);
    let mut consumed = 8u64;
    for name in ["header", "model", "optimizer"] {
        let mut n = [0u8; 8];
        f.read_exact(&mut n)
            .map_err(|_| fmt(&format!("truncated before the {name} section")))?;
        let n = u64::from_le_bytes(n);
        consumed += 8 + n;
        if consumed > len {
            return Err(fmt(&format!("truncated {name} section")));
        }
        let mut buf = vec![0u8; n as usize];
        f.read_exact(&mut buf).map_err(io(path))?;
        parts.push(buf);
    }
    let mut extra = Vec::new();
    if consumed < len {
        let mut n = [0u8; 8];
        f.read_exact(&mut n)
            .map_err(|_| fmt("truncated before the extra section"))?;
        let n = u64::from_le_bytes(n);
        consumed += 8 + n;
        if consumed > len {
            return Err(fmt("truncated extra section"));
        }
        extra = vec![0u8; n as usize];
        f.read_exact(&mut extra).map_err(io(path))?;
    }
    let optimizer = parts.pop().unwrap_or_default();
    let model = parts.pop().unwrap_or_default();
    let header: CheckpointHeader =
        serde_json::from_slice(&parts[0]).map_err(|e| fmt(&format!("bad header: {e}")))?;
    Ok(CheckpointFile {
        header,
        model,
        optimizer,
        extra,
    })
}

/// Build the detector described by a checkpoint and load its weights.
pub fn load_detector<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<(Detector<B>, CheckpointHeader), CheckpointError> {
    let file = read(path)?;
    let mismatch = |why: String| CheckpointError::Mismatch {
        path: path.to_path_buf(),
        why,
    };
    let det = file
        .header
        .model
        .init::<B>(device)
        .map_err(|e| mismatch(e.to_string()))?;
    let record = recorder()
        .load(file.model, device)
        .map_err(|e| mismatch(e.to_string()))?;
    Ok((det.load_record(record), file.header))
}

/// Point `work_dir/last_checkpoint` at `ckpt` (atomically).
pub fn mark_latest(work_dir: &Path, ckpt: &Path) -> Result<(), CheckpointError> {
    let file = work_dir.join("last_checkpoint");
    let tmp = work_dir.join("last_checkpoint.tmp");
    std::fs::write(&tmp, ckpt.to_string_lossy().as_bytes()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &file).map_err(io(&file))
}

/// The checkpoint `work_dir/last_checkpoint` points at, if any.
pub fn latest(work_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(work_dir.join("last_checkpoint")).ok()?;
    let p = PathBuf::from(text.trim());
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Flex;
    use crate::model::detector::tests::tiny_config;
    use crosskd_sdk::HeadKind;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("crosskd-ckpt-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn round_trip_restores_identical_outputs() {
        let device = Default::default();
        let cfg = tiny_config(HeadKind::Atss);
        let det: Detector<Flex> = cfg.init(&device).unwrap();
        let x = Tensor::<Flex, 4>::ones([1, 3, 64, 64], &device);
        let dir = tmpdir("rt");
        let path = dir.join("a.ckpt");
        let header = CheckpointHeader {
            model: cfg.clone(),
            epoch: 3,
            iter: 42,
            best_ap: Some(0.5),
            class_names: vec!["a".into(), "b".into(), "c".into()],
            category_ids: vec![1, 2, 3],
            train_config: None,
        };
        save(&path, &header, &det, Some(vec![1, 2, 3])).unwrap();
        let before = det.forward(x.clone())[0].cls_score.clone();
        let (back, h) = load_detector::<Flex>(&path, &device).unwrap();
        assert_eq!(h, header);
        let after = back.forward(x)[0].cls_score.clone();
        assert_eq!(before.into_data(), after.into_data());
        assert_eq!(read(&path).unwrap().optimizer, vec![1, 2, 3]);
        assert!(read(&path).unwrap().extra.is_empty());
        save_with_extra(&path, &header, &det, None, Some(vec![9, 8])).unwrap();
        let file = read(&path).unwrap();
        assert!(file.optimizer.is_empty());
        assert_eq!(file.extra, vec![9, 8]);
        assert!(!path.with_extension("ckpt.tmp").exists());
        mark_latest(&dir, &path).unwrap();
        assert_eq!(latest(&dir), Some(path.clone()));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn garbage_and_truncation_are_named_errors() {
        let dir = tmpdir("bad");
        let p = dir.join("junk.ckpt");
        std::fs::write(&p, b"hello world, not a checkpoint").unwrap();
        let e = read(&p).err().unwrap().to_string();
        assert!(e.contains("junk.ckpt") && e.contains("magic"), "{e}");
        let mut bytes = MAGIC.to_vec();
        bytes.extend(100u64.to_le_bytes());
        bytes.extend(b"{}");
        std::fs::write(&p, &bytes).unwrap();
        let e = read(&p).err().unwrap().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! Loading torchvision ImageNet weights into a [`ResNet`].
//!
//! Reads a PyTorch checkpoint (`.pth`/`.pt`: zip, legacy or tar pickle, through
//! burn-store's `PytorchReader`) or a `.safetensors` file (burn-store's
//! `SafetensorsStore`); the format is sniffed from the file's first bytes, the
//! extension only serves the error message. Keys are remapped from torchvision's
//! names to our module paths:
//!
//! | torchvision                    | ours                              |
//! |--------------------------------|-----------------------------------|
//! | `bn1.weight` / `bn1.bias`      | `bn1.gamma` / `bn1.beta`          |
//! | `layer1.0.downsample.0.weight` | `layer1.0.downsample.conv.weight` |
//! | `layer1.0.downsample.1.*`      | `layer1.0.downsample.bn.*`        |
//! | `*.num_batches_tracked`, `fc.*`| skipped                           |
//!
//! Wrappers are peeled first: a `state_dict` / `model_state_dict` / `model` /
//! `module` top level (checkpoints and DataParallel), then MMDetection's
//! `backbone.` prefix (keys outside it, `neck.*`, `bbox_head.*`, are skipped).
//! Files written from our own modules (`gamma`, `downsample.conv`) load as well.
//!
//! Everything is checked before a single tensor is touched: shapes, missing and
//! unexpected keys, and every tensor's data is decoded and converted to the
//! parameter's dtype up front, so a bad file gives a [`WeightError`] and never a
//! half-loaded network or a panic.
//!
//! Gradient flags: burn's loader (`Param::transform_for_load`) keeps each
//! parameter's `require_grad`, even for lazily initialised parameters, so the
//! frozen stages set by `ResNetConfig::init` stay frozen. The loader re-applies
//! the flags it could read anyway, and forces the BN running statistics to
//! `require_grad = false`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::{Bool, DType, Int, TensorData};
use burn_store::pytorch::PytorchReader;
use burn_store::{Applier, ModuleStore, SafetensorsStore, TensorSnapshot};

use super::resnet::ResNet;

/// At most this many keys are spelled out in an error message.
const MAX_LISTED: usize = 40;

/// Top-level dictionaries that wrap a state dict in training checkpoints.
const WRAPPERS: [&str; 4] = ["state_dict", "model_state_dict", "model", "module"];

/// MMDetection's prefix of the backbone inside a detector's state dict.
const BACKBONE_PREFIX: &str = "backbone.";

/// On-disk format of a weight file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// `torch.save` output: zip (PyTorch ≥ 1.6), legacy pickle stream, or tar.
    PyTorch,
    /// Hugging Face safetensors.
    Safetensors,
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightFormat::PyTorch => write!(f, "PyTorch"),
            WeightFormat::Safetensors => write!(f, "safetensors"),
        }
    }
}

/// How strict [`load_resnet_weights`] is. The default is fully strict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Keep the initial value of model parameters the file lacks instead of failing.
    pub allow_missing: bool,
    /// Ignore file keys that match no model parameter instead of failing.
    pub allow_unexpected: bool,
}

impl LoadOptions {
    /// Strict loading: every parameter present, no unknown key.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Set [`LoadOptions::allow_missing`].
    pub fn with_allow_missing(mut self, allow: bool) -> Self {
        self.allow_missing = allow;
        self
    }

    /// Set [`LoadOptions::allow_unexpected`].
    pub fn with_allow_unexpected(mut self, allow: bool) -> Self {
        self.allow_unexpected = allow;
        self
    }
}

/// Why a key of the file was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A BatchNorm `num_batches_tracked` counter (our BN is always in eval mode).
    BatchCounter,
    /// The ImageNet classifier `fc.*`, not part of a detection backbone.
    Classifier,
    /// Outside the checkpoint's wrapper dictionary (e.g. `optimizer.*` beside `state_dict`).
    OutsideWrapper(String),
    /// Outside MMDetection's `backbone.` prefix (neck, heads).
    NotBackbone,
    /// Matches no model parameter; ignored because `allow_unexpected` is set.
    Unexpected,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::BatchCounter => write!(f, "BatchNorm batch counter"),
            SkipReason::Classifier => write!(f, "ImageNet classifier"),
            SkipReason::OutsideWrapper(w) => write!(f, "outside the `{w}` dictionary"),
            SkipReason::NotBackbone => write!(f, "not under the `backbone.` prefix"),
            SkipReason::Unexpected => write!(f, "unexpected key (allow_unexpected)"),
        }
    }
}

/// A file key that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key as written in the file.
    pub key: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// What [`load_resnet_weights`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Format the file was read as.
    pub format: WeightFormat,
    /// Model parameters that received a value from the file (our paths, sorted).
    pub loaded: Vec<String>,
    /// File keys that were not loaded (sorted by key).
    pub skipped: Vec<SkippedKey>,
    /// Model parameters absent from the file, left at their initial value
    /// (only non-empty with `allow_missing`).
    pub missing: Vec<String>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for s in &self.skipped {
            *reasons.entry(s.reason.to_string()).or_default() += 1;
        }
        write!(
            f,
            "{} file: loaded {} tensors, skipped {}",
            self.format,
            self.loaded.len(),
            self.skipped.len()
        )?;
        if !reasons.is_empty() {
            let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        if !self.missing.is_empty() {
            write!(
                f,
                ", {} model parameters not in the file kept their initial value: {}",
                self.missing.len(),
                list_keys(&self.missing)
            )?;
        }
        Ok(())
    }
}

/// One tensor whose shape in the file differs from the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The model parameter (our path).
    pub path: String,
    /// The key in the file.
    pub key: String,
    /// Shape the model expects.
    pub expected: Vec<usize>,
    /// Shape found in the file.
    pub found: Vec<usize>,
}

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.key)?;
        if self.key != self.path {
            write!(f, " (model `{}`)", self.path)?;
        }
        write!(
            f,
            ": model expects {:?}, file has {:?}",
            self.expected, self.found
        )
    }
}

/// Error loading ResNet weights.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    /// The file cannot be opened or read.
    #[error("cannot read weight file `{}`: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is neither a PyTorch checkpoint nor a safetensors file.
    #[error("`{}` is not a weight file: {reason}", .path.display())]
    NotAWeightFile {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The file looks like a weight file but its reader rejected it.
    #[error("cannot parse {format} weight file `{}`: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The format it was read as.
        format: WeightFormat,
        /// The reader's message.
        message: String,
    },
    /// One tensor's data cannot be decoded.
    #[error("cannot read tensor `{key}` of `{}`: {message}", .path.display())]
    TensorData {
        /// The file.
        path: PathBuf,
        /// The key in the file.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// Two keys of the file map to the same model parameter.
    #[error(
        "`{}`: keys `{}` and `{}` both map to model parameter `{target}`",
        .path.display(), .keys.0, .keys.1
    )]
    DuplicateKey {
        /// The file.
        path: PathBuf,
        /// The model parameter.
        target: String,
        /// The two file keys.
        keys: (String, String),
    },
    /// Tensors whose shapes differ between file and model (wrong depth or width_mult?).
    #[error(
        "`{}` does not fit this ResNet (saved for another depth or width_mult?): {} shape mismatch(es): {}{}",
        .path.display(), .mismatches.len(), list_mismatches(.mismatches),
        other_problems(*.missing, *.unexpected)
    )]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// Every mismatching tensor.
        mismatches: Vec<ShapeMismatch>,
        /// How many model parameters are also absent from the file.
        missing: usize,
        /// How many file keys also match no model parameter.
        unexpected: usize,
    },
    /// Model parameters absent from the file (and `allow_missing` is off).
    #[error(
        "`{}` lacks {} parameter(s) of the model (set allow_missing to keep their initial values): {}{}",
        .path.display(), .missing.len(), list_missing(.missing), unexpected_hint(.unexpected)
    )]
    MissingKeys {
        /// The file.
        path: PathBuf,
        /// Missing model parameters (our paths).
        missing: Vec<String>,
        /// File keys matching no parameter, often the renamed missing ones.
        unexpected: Vec<String>,
    },
    /// File keys matching no model parameter (and `allow_unexpected` is off).
    #[error(
        "`{}` has {} key(s) that match no parameter of the model (set allow_unexpected to ignore them): {}",
        .path.display(), .unexpected.len(), list_keys(.unexpected)
    )]
    UnexpectedKeys {
        /// The file.
        path: PathBuf,
        /// The keys as written in the file.
        unexpected: Vec<String>,
    },
    /// burn-store reported an error while writing the checked tensors into the model.
    #[error("applying the weights of `{}` failed: {message}", .path.display())]
    Apply {
        /// The file.
        path: PathBuf,
        /// burn-store's report.
        message: String,
    },
}

fn list_keys(keys: &[String]) -> String {
    let mut s: Vec<String> = keys
        .iter()
        .take(MAX_LISTED)
        .map(|k| format!("`{k}`"))
        .collect();
    if keys.len() > MAX_LISTED {
        s.push(format!("… and {} more", keys.len() - MAX_LISTED));
    }
    s.join(", ")
}

fn list_missing(paths: &[String]) -> String {
    let mut s: Vec<String> = paths
        .iter()
        .take(MAX_LISTED)
        .map(|p| {
            let tv = torchvision_name(p);
            if tv == *p {
                format!("`{p}`")
            } else {
                format!("`{p}` (torchvision `{tv}`)")
            }
        })
        .collect();
    if paths.len() > MAX_LISTED {
        s.push(format!("… and {} more", paths.len() - MAX_LISTED));
    }
    s.join(", ")
}

fn list_mismatches(m: &[ShapeMismatch]) -> String {
    let mut s: Vec<String> = m.iter().take(MAX_LISTED).map(|m| m.to_string()).collect();
    if m.len() > MAX_LISTED {
        s.push(format!("… and {} more", m.len() - MAX_LISTED));
    }
    s.join("; ")
}

fn other_problems(missing: usize, unexpected: usize) -> String {
    if missing == 0 && unexpected == 0 {
        String::new()
    } else {
        format!(" (also {missing} missing and {unexpected} unexpected keys)")
    }
}

fn unexpected_hint(unexpected: &[String]) -> String {
    if unexpected.is_empty() {
        String::new()
    } else {
        format!(
            "; the file has {} key(s) matching no parameter: {}",
            unexpected.len(),
            list_keys(unexpected)
        )
    }
}

/// Our module path → torchvision's name (for messages).
fn torchvision_name(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let n = parts.len();
    let mut out: Vec<&str> = Vec::with_capacity(n);
    for (i, p) in parts.iter().enumerate() {
        let prev = if i > 0 { parts[i - 1] } else { "" };
        out.push(match (*p, prev) {
            ("conv", "downsample") => "0",
            ("bn", "downsample") => "1",
            ("gamma", _) if i == n - 1 => "weight",
            ("beta", _) if i == n - 1 => "bias",
            (p, _) => p,
        });
    }
    out.join(".")
}

/// Load torchvision-named ResNet weights from `path` into `net`.
///
/// The format (PyTorch `.pth`/`.pt` or `.safetensors`) is detected from the
/// file's content. See the module documentation for the key mapping. Frozen
/// stages stay frozen and BN running statistics stay non-trainable.
///
/// ```no_run
/// use std::path::Path;
/// use crosskd_trainer::backend::Flex;
/// use crosskd_trainer::model::backbone::ResNetConfig;
/// use crosskd_trainer::model::backbone::weights::{load_resnet_weights, LoadOptions};
///
/// let net = ResNetConfig::new(50).init::<Flex>(&Default::default()).unwrap();
/// let (net, report) =
///     load_resnet_weights(net, Path::new("resnet50-0676ba61.pth"), &LoadOptions::default())
///         .unwrap();
/// println!("{report}");
/// # drop(net);
/// ```
pub fn load_resnet_weights<B: Backend>(
    net: ResNet<B>,
    path: &Path,
    opts: &LoadOptions,
) -> Result<(ResNet<B>, LoadReport), WeightError> {
    let (format, container) = detect(path)?;
    let tensors = read_tensors(path, format, container)?;

    // File keys → model paths.
    let keys: Vec<String> = tensors.iter().map(|(k, _)| k.clone()).collect();
    let resolved = resolve_keys(&keys);

    // What the model expects (without initialising lazy parameters).
    let mut inventory = Inventory::<B>::default();
    net.visit(&mut inventory);

    let mut skipped = Vec::new();
    let mut unexpected = Vec::new();
    let mut by_target: BTreeMap<String, (String, TensorSnapshot)> = BTreeMap::new();
    for ((key, snapshot), res) in tensors.into_iter().zip(resolved) {
        match res {
            Err(reason) => skipped.push(SkippedKey { key, reason }),
            Ok(target) if !inventory.params.contains_key(&target) => unexpected.push(key),
            Ok(target) => {
                if let Some((first, _)) = by_target.get(&target) {
                    return Err(WeightError::DuplicateKey {
                        path: path.to_path_buf(),
                        keys: (first.clone(), key),
                        target,
                    });
                }
                by_target.insert(target, (key, snapshot));
            }
        }
    }
    unexpected.sort();
    let missing: Vec<String> = inventory
        .params
        .keys()
        .filter(|p| !by_target.contains_key(*p))
        .cloned()
        .collect();

    let mismatches: Vec<ShapeMismatch> = by_target
        .iter()
        .filter_map(|(target, (key, snap))| {
            let expected = &inventory.params[target].shape;
            let found = snap.shape.to_vec();
            (*expected != found).then(|| ShapeMismatch {
                path: target.clone(),
                key: key.clone(),
                expected: expected.clone(),
                found,
            })
        })
        .collect();
    if !mismatches.is_empty() {
        return Err(WeightError::ShapeMismatch {
            path: path.to_path_buf(),
            mismatches,
            missing: missing.len(),
            unexpected: unexpected.len(),
        });
    }
    if !missing.is_empty() && !opts.allow_missing {
        return Err(WeightError::MissingKeys {
            path: path.to_path_buf(),
            missing,
            unexpected,
        });
    }
    if !unexpected.is_empty() && !opts.allow_unexpected {
        return Err(WeightError::UnexpectedKeys {
            path: path.to_path_buf(),
            unexpected,
        });
    }
    skipped.extend(unexpected.into_iter().map(|key| SkippedKey {
        key,
        reason: SkipReason::Unexpected,
    }));
    skipped.sort_by(|a, b| a.key.cmp(&b.key));

    // Decode every tensor now, so that applying cannot fail half-way.
    let defaults = DefaultDtypes::probe::<B>(&inventory.device);
    let mut snapshots = Vec::with_capacity(by_target.len());
    for (target, (key, snap)) in &by_target {
        let param = &inventory.params[target];
        let dtype = param.dtype.unwrap_or(match param.kind {
            Kind::Float => defaults.float,
            Kind::Int => defaults.int,
            Kind::Bool => defaults.bool,
        });
        let data =
            decode(snap, &param.shape, dtype).map_err(|message| WeightError::TensorData {
                path: path.to_path_buf(),
                key: key.clone(),
                message,
            })?;
        snapshots.push(TensorSnapshot::from_data(
            data,
            target.split('.').map(str::to_string).collect(),
            Vec::new(),
            ParamId::new(),
        ));
    }

    // Write them in with burn-store's applier (keeps ids, devices and grad flags).
    // `Module::map` consumes `net`, so a panic cannot leave a moved-out module behind
    // (`ModuleSnapshot::apply` uses `ptr::read`/`ptr::write` on `&mut self`).
    let applied = catch_unwind(AssertUnwindSafe(move || {
        let mut applier = Applier::<B>::new(snapshots, None, None, false);
        let net = net.map(&mut applier);
        (net, applier.into_result())
    }))
    .map_err(|panic| WeightError::Apply {
        path: path.to_path_buf(),
        message: panic_message(panic),
    })?;
    let (net, result) = applied;
    let expected_loaded: BTreeSet<&String> = by_target.keys().collect();
    let actually_loaded: BTreeSet<&String> = result.applied.iter().collect();
    if !result.errors.is_empty() || expected_loaded != actually_loaded {
        return Err(WeightError::Apply {
            path: path.to_path_buf(),
            message: result.to_string(),
        });
    }

    // Re-assert gradient flags: what was recorded before loading, and never train BN stats.
    let mut restorer = GradRestorer {
        path: Vec::new(),
        flags: &inventory.require_grad,
    };
    let net = net.map(&mut restorer);

    let report = LoadReport {
        format,
        loaded: by_target.keys().cloned().collect(),
        skipped,
        missing,
    };
    Ok((net, report))
}

/// Detect the format of a weight file from its first bytes.
///
/// Errors: [`WeightError::Io`] when the file cannot be read,
/// [`WeightError::NotAWeightFile`] when it is neither format.
pub fn detect_format(path: &Path) -> Result<WeightFormat, WeightError> {
    detect(path).map(|(format, _)| format)
}

/// The container a weight file was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// `torch.save` since PyTorch 1.6.
    Zip,
    /// Pre-1.6 `torch.save` (`_use_new_zipfile_serialization=False`): magic number pickle first.
    LegacyPickle,
    /// Very old torchvision files.
    Tar,
    /// A bare pickle: no tensor storage, so no weights (burn cannot read its tensors).
    PlainPickle,
    /// safetensors.
    Safetensors,
}

/// `torch.save`'s legacy stream starts with the pickled magic number 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

fn detect(path: &Path) -> Result<(WeightFormat, Container), WeightError> {
    let io = |source| WeightError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(512);
    file.by_ref().take(512).read_to_end(&mut head).map_err(io)?;
    let not_weights = |reason: String| WeightError::NotAWeightFile {
        path: path.to_path_buf(),
        reason,
    };
    match sniff(&head, len) {
        Some(Container::Safetensors) => Ok((WeightFormat::Safetensors, Container::Safetensors)),
        Some(Container::PlainPickle) => Err(not_weights(
            "it is a plain Python pickle, not a `torch.save` checkpoint: it holds no tensor \
             storage (save the state dict with `torch.save(model.state_dict(), path)`)"
                .to_string(),
        )),
        Some(c) => Ok((WeightFormat::PyTorch, c)),
        None => Err(not_weights(describe_unknown(&head, path))),
    }
}

fn sniff(head: &[u8], len: u64) -> Option<Container> {
    // Zip archive (local file header, or the end record of an empty archive).
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Some(Container::Zip);
    }
    if head.starts_with(&LEGACY_MAGIC) {
        return Some(Container::LegacyPickle);
    }
    // safetensors: u64 little-endian header length, then a JSON object.
    if head.len() >= 10 {
        let mut n = [0u8; 8];
        n.copy_from_slice(&head[..8]);
        let n = u64::from_le_bytes(n);
        if n >= 2 && n.checked_add(8).is_some_and(|end| end <= len) && head[8] == b'{' {
            return Some(Container::Safetensors);
        }
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Some(Container::Tar);
    }
    // Pickle protocol 2..=5 without the torch magic number.
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Some(Container::PlainPickle);
    }
    None
}

/// Whether a zip file has its end-of-central-directory record (within the last 64 KiB + 22 B).
///
/// burn's reader falls back to parsing the raw bytes as a pickle when the zip
/// cannot be opened; a truncated download is caught here instead.
fn zip_is_complete(path: &Path) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let tail_len = len.min(65_557);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.take(tail_len).read_to_end(&mut tail)?;
    Ok(tail.windows(4).any(|w| w == b"PK\x05\x06"))
}

fn describe_unknown(head: &[u8], path: &Path) -> String {
    let expected =
        "expected a PyTorch checkpoint (`torch.save` zip or pickle) or a safetensors file";
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let ext_note = match ext.as_str() {
        "pth" | "pt" | "bin" | "ckpt" | "safetensors" => {
            format!(" despite its `.{ext}` extension")
        }
        _ => String::new(),
    };
    if head.is_empty() {
        return format!("the file is empty; {expected}");
    }
    let text = std::str::from_utf8(head)
        .ok()
        .filter(|s| s.chars().all(|c| !c.is_control() || c.is_whitespace()));
    match text {
        Some(s) => {
            let start: String = s.chars().take(40).collect();
            format!("it looks like a text file{ext_note} (starts with {start:?}); {expected}")
        }
        None => {
            let bytes: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!(
                "unrecognised header bytes [{}]{ext_note}; {expected}",
                bytes.join(" ")
            )
        }
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// All tensors of the file, sorted by key, with lazy data.
fn read_tensors(
    path: &Path,
    format: WeightFormat,
    container: Container,
) -> Result<Vec<(String, TensorSnapshot)>, WeightError> {
    let parse = |message: String| WeightError::Parse {
        path: path.to_path_buf(),
        format,
        message,
    };
    if container == Container::Zip {
        let complete = zip_is_complete(path).map_err(|source| WeightError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if !complete {
            return Err(parse(
                "truncated or corrupt zip archive (no end-of-central-directory record)".to_string(),
            ));
        }
    }
    let read = catch_unwind(AssertUnwindSafe(|| match format {
        WeightFormat::PyTorch => PytorchReader::new(path)
            .map(|r| r.into_tensors().into_iter().collect::<Vec<_>>())
            .map_err(|e| e.to_string()),
        WeightFormat::Safetensors => {
            // Not `load_from`: the store would apply with its own (identity) naming.
            let mut store = SafetensorsStore::from_file(path);
            store
                .get_all_snapshots()
                .map(|all| {
                    all.iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<Vec<_>>()
                })
                .map_err(|e| e.to_string())
        }
    }))
    .map_err(|p| parse(panic_message(p)))?;
    let mut tensors = read.map_err(parse)?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// Materialise one tensor, check its real shape and convert it to `dtype`.
fn decode(snap: &TensorSnapshot, shape: &[usize], dtype: DType) -> Result<TensorData, String> {
    let data = snap.to_data().map_err(|e| e.to_string())?;
    if data.shape.as_slice() != shape {
        return Err(format!(
            "declared shape {shape:?} but the data has shape {:?}",
            data.shape.to_vec()
        ));
    }
    if matches!(data.dtype, DType::QFloat(_)) {
        return Err("quantized tensors are not supported".to_string());
    }
    let numel: usize = shape.iter().product();
    let expected_bytes = numel * data.dtype.size();
    if data.bytes.len() != expected_bytes {
        return Err(format!(
            "{} bytes of {:?} data for shape {shape:?} ({expected_bytes} expected)",
            data.bytes.len(),
            data.dtype
        ));
    }
    catch_unwind(AssertUnwindSafe(|| data.convert_dtype(dtype)))
        .map_err(|p| format!("dtype conversion to {dtype:?} {}", panic_message(p)))
}

/// File keys → our module paths (or why a key is skipped). Order is preserved.
pub fn resolve_keys(keys: &[String]) -> Vec<Result<String, SkipReason>> {
    let mut names: Vec<Result<String, SkipReason>> = keys.iter().cloned().map(Ok).collect();

    // Peel wrapper dictionaries (possibly nested: `state_dict.module.…`).
    loop {
        let wrapper = WRAPPERS.iter().find(|w| {
            names.iter().any(
                |n| matches!(n, Ok(s) if s.strip_prefix(**w).is_some_and(|r| r.starts_with('.'))),
            )
        });
        let Some(wrapper) = wrapper else { break };
        let prefix = format!("{wrapper}.");
        for n in names.iter_mut() {
            if let Ok(s) = n {
                *n = match s.strip_prefix(&prefix) {
                    Some(rest) => Ok(rest.to_string()),
                    None => Err(SkipReason::OutsideWrapper(wrapper.to_string())),
                };
            }
        }
    }

    // MMDetection detector checkpoint: keep the backbone only.
    if names
        .iter()
        .any(|n| matches!(n, Ok(s) if s.starts_with(BACKBONE_PREFIX)))
    {
        for n in names.iter_mut() {
            if let Ok(s) = n {
                *n = match s.strip_prefix(BACKBONE_PREFIX) {
                    Some(rest) => Ok(rest.to_string()),
                    None => Err(SkipReason::NotBackbone),
                };
            }
        }
    }

    names
        .into_iter()
        .map(|n| n.and_then(|s| map_torchvision_name(&s)))
        .collect()
}

/// One torchvision ResNet name (wrappers already removed) → our module path.
fn map_torchvision_name(name: &str) -> Result<String, SkipReason> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.last() == Some(&"num_batches_tracked") {
        return Err(SkipReason::BatchCounter);
    }
    if parts.first() == Some(&"fc") {
        return Err(SkipReason::Classifier);
    }
    let n = parts.len();
    let mut out: Vec<&str> = Vec::with_capacity(n);
    for (i, part) in parts.iter().enumerate() {
        let prev = if i > 0 { out[i - 1] } else { "" };
        let mapped = match (*part, prev) {
            ("0", "downsample") => "conv",
            ("1", "downsample") => "bn",
            ("weight", parent) if i == n - 1 && is_bn(parent) => "gamma",
            ("bias", parent) if i == n - 1 && is_bn(parent) => "beta",
            (p, _) => p,
        };
        out.push(mapped);
    }
    Ok(out.join("."))
}

/// `bn`, `bn1`, `bn2`, `bn3`: our BatchNorm fields.
fn is_bn(segment: &str) -> bool {
    segment
        .strip_prefix("bn")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Float,
    Int,
    Bool,
}

#[derive(Debug, Clone)]
struct ExpectedParam {
    shape: Vec<usize>,
    kind: Kind,
    /// Known only for parameters already initialised (reading a lazy one would initialise it).
    dtype: Option<DType>,
}

/// Collects every parameter's path, shape and (when cheap) dtype and grad flag.
struct Inventory<B: Backend> {
    path: Vec<String>,
    params: BTreeMap<String, ExpectedParam>,
    require_grad: HashMap<String, bool>,
    device: B::Device,
    device_seen: bool,
}

impl<B: Backend> Default for Inventory<B> {
    fn default() -> Self {
        Self {
            path: Vec::new(),
            params: BTreeMap::new(),
            require_grad: HashMap::new(),
            device: Default::default(),
            device_seen: false,
        }
    }
}

impl<B: Backend> Inventory<B> {
    fn record(
        &mut self,
        shape: Vec<usize>,
        kind: Kind,
        device: B::Device,
        value: Option<(DType, bool)>,
    ) {
        let path = self.path.join(".");
        if !self.device_seen {
            self.device = device;
            self.device_seen = true;
        }
        if let Some((_, grad)) = value {
            self.require_grad.insert(path.clone(), grad);
        }
        self.params.insert(
            path,
            ExpectedParam {
                shape,
                kind,
                dtype: value.map(|(d, _)| d),
            },
        );
    }
}

impl<B: Backend> ModuleVisitor<B> for Inventory<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.is_initialized().then(|| {
            let t = param.val();
            (t.dtype(), t.is_require_grad())
        });
        self.record(
            param.lazy_shape().to_vec(),
            Kind::Float,
            param.lazy_device(),
            value,
        );
    }

    fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<B, D, Int>>) {
        let value = param.is_initialized().then(|| (param.val().dtype(), false));
        self.record(
            param.lazy_shape().to_vec(),
            Kind::Int,
            param.lazy_device(),
            value,
        );
    }

    fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<B, D, Bool>>) {
        let value = param.is_initialized().then(|| (param.val().dtype(), false));
        self.record(
            param.lazy_shape().to_vec(),
            Kind::Bool,
            param.lazy_device(),
            value,
        );
    }
}

/// The dtypes tensors get on a device when none is asked for.
struct DefaultDtypes {
    float: DType,
    int: DType,
    bool: DType,
}

impl DefaultDtypes {
    fn probe<B: Backend>(device: &B::Device) -> Self {
        Self {
            float: Tensor::<B, 1>::zeros([1], device).dtype(),
            int: Tensor::<B, 1, Int>::zeros([1], device).dtype(),
            bool: Tensor::<B, 1, Bool>::empty([1], device).dtype(),
        }
    }
}

/// Sets `require_grad` back to the recorded flags; BN running statistics never train.
struct GradRestorer<'a> {
    path: Vec<String>,
    flags: &'a HashMap<String, bool>,
}

impl<B: Backend> ModuleMapper<B> for GradRestorer<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let leaf = self.path.last().map(String::as_str);
        let wanted = if matches!(leaf, Some("running_mean" | "running_var")) {
            Some(false)
        } else {
            self.flags.get(&self.path.join(".")).copied()
        };
        match wanted {
            Some(grad) if param.is_initialized() && param.val().is_require_grad() == grad => param,
            Some(grad) => param.set_require_grad(grad),
            None => param,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Flex, FlexAutodiff};
    use crate::model::backbone::ResNetConfig;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "crosskd-weights-{tag}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    /// One tensor of a synthetic torchvision state dict.
    #[derive(Clone)]
    struct Entry {
        shape: Vec<usize>,
        /// f32 values; `num_batches_tracked` is written as an i64 scalar instead.
        values: Vec<f32>,
    }

    /// torchvision's state dict of `ResNetConfig::new(depth).with_width_mult(w)`,
    /// enumerated by hand in torchvision's own order and naming (conv weights
    /// `[out, in, k, k]`, `downsample.0/1`, BN `weight/bias/running_*`), plus a
    /// 10-class `fc`. Values follow a fixed formula (see `synth`): tensor `t`
    /// (its index in this list), element `i`.
    fn torchvision_state(depth: usize, width: f32) -> Vec<(String, Entry)> {
        let cfg = ResNetConfig::new(depth).with_width_mult(width);
        let (blocks, bottleneck) = cfg.layout().unwrap();
        let exp = if bottleneck { 4 } else { 1 };
        let planes = cfg.stage_channels().unwrap().map(|c| c / exp);
        let stem = planes[0]; // `scaled(64)` for both the stem and layer1.
        let mut names: Vec<(String, Vec<usize>)> = Vec::new();
        let bn = |names: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
            for leaf in ["weight", "bias", "running_mean", "running_var"] {
                names.push((format!("{p}.{leaf}"), vec![c]));
            }
            names.push((format!("{p}.num_batches_tracked"), vec![]));
        };
        names.push(("conv1.weight".into(), vec![stem, 3, 7, 7]));
        bn(&mut names, "bn1", stem);
        let mut in_c = stem;
        for (s, &n) in blocks.iter().enumerate() {
            let p = planes[s];
            let out = p * exp;
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let pre = format!("layer{}.{b}", s + 1);
                if bottleneck {
                    names.push((format!("{pre}.conv1.weight"), vec![p, in_c, 1, 1]));
                    bn(&mut names, &format!("{pre}.bn1"), p);
                    names.push((format!("{pre}.conv2.weight"), vec![p, p, 3, 3]));
                    bn(&mut names, &format!("{pre}.bn2"), p);
                    names.push((format!("{pre}.conv3.weight"), vec![out, p, 1, 1]));
                    bn(&mut names, &format!("{pre}.bn3"), out);
                } else {
                    names.push((format!("{pre}.conv1.weight"), vec![p, in_c, 3, 3]));
                    bn(&mut names, &format!("{pre}.bn1"), p);
                    names.push((format!("{pre}.conv2.weight"), vec![p, p, 3, 3]));
                    bn(&mut names, &format!("{pre}.bn2"), p);
                }
                if stride != 1 || in_c != out {
                    names.push((format!("{pre}.downsample.0.weight"), vec![out, in_c, 1, 1]));
                    bn(&mut names, &format!("{pre}.downsample.1"), out);
                }
                in_c = out;
            }
        }
        names.push(("fc.weight".into(), vec![10, in_c]));
        names.push(("fc.bias".into(), vec![10]));
        names
            .into_iter()
            .enumerate()
            .map(|(t, (name, shape))| {
                let values = synth(&name, t, &shape);
                (name, Entry { shape, values })
            })
            .collect()
    }

    /// Deterministic values: `u(t, i) = ((131 t + 17 i) mod 97) / 97 − 0.5 ∈ [−0.5, 0.5)`;
    /// conv weights `u · 2 / sqrt(fan_in)`, BN weight `1 + 0.5 u`, bias `0.1 u`,
    /// running_mean `0.1 u`, running_var `1 + u` (> 0), anything else `u`.
    fn synth(name: &str, t: usize, shape: &[usize]) -> Vec<f32> {
        let numel: usize = shape.iter().product();
        let u = |i: usize| ((131 * t + 17 * i) % 97) as f32 / 97.0 - 0.5;
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        (0..numel)
            .map(|i| {
                let u = u(i);
                if shape.len() == 4 {
                    u * 2.0 / (fan_in as f32).sqrt()
                } else if name.ends_with("running_var") {
                    1.0 + u
                } else if name.ends_with("running_mean") || name.ends_with("bias") {
                    0.1 * u
                } else if name.ends_with("weight") && !name.starts_with("fc") {
                    1.0 + 0.5 * u
                } else {
                    u
                }
            })
            .collect()
    }

    /// Writes `entries` with the `safetensors` crate (f32, or f64 when `f64`;
    /// `num_batches_tracked` as an i64 scalar, like torch).
    fn write_safetensors(path: &Path, entries: &[(String, Entry)], f64: bool) {
        let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = entries
            .iter()
            .map(|(name, e)| {
                if name.ends_with("num_batches_tracked") {
                    (
                        name.clone(),
                        Dtype::I64,
                        vec![],
                        1000i64.to_le_bytes().to_vec(),
                    )
                } else if f64 {
                    let b = e
                        .values
                        .iter()
                        .flat_map(|v| (*v as f64).to_le_bytes())
                        .collect();
                    (name.clone(), Dtype::F64, e.shape.clone(), b)
                } else {
                    let b = e.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    (name.clone(), Dtype::F32, e.shape.clone(), b)
                }
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = bytes
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    fn values<B: Backend, const D: usize>(p: &Param<Tensor<B, D>>) -> Vec<f32> {
        p.val().into_data().convert::<f32>().to_vec().unwrap()
    }

    fn entry<'a>(state: &'a [(String, Entry)], name: &str) -> &'a Entry {
        &state.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// Sets every parameter from `state` by struct field, without any string
    /// mapping: the reference the loader is compared with.
    fn assign_by_hand<B: Backend>(
        mut net: ResNet<B>,
        state: &[(String, Entry)],
        device: &B::Device,
    ) -> ResNet<B> {
        use crate::model::layers::EvalBatchNorm2d;
        use burn::nn::conv::Conv2d;
        let t4 = |name: &str| {
            let e = entry(state, name);
            let data = TensorData::new(e.values.clone(), e.shape.clone());
            Param::from_tensor(Tensor::<B, 4>::from_data(data, device))
        };
        let t1 = |name: &str| {
            let e = entry(state, name);
            Param::from_tensor(Tensor::<B, 1>::from_floats(e.values.as_slice(), device))
        };
        let conv = |c: &mut Conv2d<B>, p: &str| c.weight = t4(&format!("{p}.weight"));
        let bn = |b: &mut EvalBatchNorm2d<B>, p: &str| {
            b.gamma = t1(&format!("{p}.weight"));
            b.beta = t1(&format!("{p}.bias"));
            b.running_mean = t1(&format!("{p}.running_mean"));
            b.running_var = t1(&format!("{p}.running_var"));
        };
        conv(&mut net.conv1, "conv1");
        bn(&mut net.bn1, "bn1");
        let layers = [
            &mut net.layer1,
            &mut net.layer2,
            &mut net.layer3,
            &mut net.layer4,
        ];
        for (s, layer) in layers.into_iter().enumerate() {
            for (b, block) in layer.iter_mut().enumerate() {
                let pre = format!("layer{}.{b}", s + 1);
                conv(&mut block.conv1, &format!("{pre}.conv1"));
                bn(&mut block.bn1, &format!("{pre}.bn1"));
                conv(&mut block.conv2, &format!("{pre}.conv2"));
                bn(&mut block.bn2, &format!("{pre}.bn2"));
                if let Some(c) = block.conv3.as_mut() {
                    conv(c, &format!("{pre}.conv3"));
                }
                if let Some(n) = block.bn3.as_mut() {
                    bn(n, &format!("{pre}.bn3"));
                }
                if let Some(ds) = block.downsample.as_mut() {
                    conv(&mut ds.conv, &format!("{pre}.downsample.0"));
                    bn(&mut ds.bn, &format!("{pre}.downsample.1"));
                }
            }
        }
        net
    }

    /// The fixtures' input: `x.flatten()[i] = ((37 i) mod 101) / 101 − 0.5`.
    fn fixture_input<B: Backend>(hw: usize, device: &B::Device) -> Tensor<B, 4> {
        let n = 3 * hw * hw;
        let v: Vec<f32> = (0..n)
            .map(|i| ((37 * i) % 101) as f32 / 101.0 - 0.5)
            .collect();
        Tensor::from_data(TensorData::new(v, [1, 3, hw, hw]), device)
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn features<B: Backend>(net: &ResNet<B>, x: Tensor<B, 4>) -> Vec<Vec<f32>> {
        net.forward(x)
            .into_iter()
            .map(|t| t.into_data().convert::<f32>().to_vec().unwrap())
            .collect()
    }

    fn tiny(depth: usize, width: f32) -> ResNet<Flex> {
        ResNetConfig::new(depth)
            .with_width_mult(width)
            .init::<Flex>(&Default::default())
            .unwrap()
    }

    /// (1) safetensors with torchvision names, ResNet-18 at width 0.25.
    #[test]
    fn safetensors_torchvision_resnet18_lands_in_the_right_place() {
        let dir = Scratch::new("st18");
        let path = dir.file("resnet18.safetensors");
        let state = torchvision_state(18, 0.25);
        write_safetensors(&path, &state, false);

        let device = Default::default();
        let fresh = tiny(18, 0.25);
        let x = fixture_input::<Flex>(64, &device);
        let before = features(&fresh, x.clone());
        let (net, report) = load_resnet_weights(fresh, &path, &LoadOptions::default()).unwrap();

        assert_eq!(report.format, WeightFormat::Safetensors);
        assert!(report.missing.is_empty());
        // 20 BN layers → 20 counters, plus fc.weight and fc.bias.
        let counters = report
            .skipped
            .iter()
            .filter(|s| s.reason == SkipReason::BatchCounter)
            .count();
        assert_eq!(counters, 20, "{report}");
        assert_eq!(report.skipped.len(), 22, "{report}");
        assert_eq!(report.loaded.len(), state.len() - 22);
        assert!(report
            .loaded
            .contains(&"layer2.0.downsample.bn.running_var".to_string()));

        // Specific tensors, compared with the values written under torchvision names.
        let ds = net.layer2[0].downsample.as_ref().unwrap();
        assert_eq!(
            values(&ds.bn.running_var),
            entry(&state, "layer2.0.downsample.1.running_var").values
        );
        assert_eq!(
            values(&ds.bn.gamma),
            entry(&state, "layer2.0.downsample.1.weight").values
        );
        assert_eq!(
            values(&ds.conv.weight),
            entry(&state, "layer2.0.downsample.0.weight").values
        );
        assert_eq!(ds.conv.weight.dims(), [32, 16, 1, 1]);
        assert_eq!(
            values(&net.layer4[1].bn2.beta),
            entry(&state, "layer4.1.bn2.bias").values
        );
        assert_eq!(
            values(&net.layer3[0].conv1.weight),
            entry(&state, "layer3.0.conv1.weight").values
        );
        assert_eq!(values(&net.bn1.gamma), entry(&state, "bn1.weight").values);

        // The forward output is that of the same weights set field by field.
        let reference = assign_by_hand(tiny(18, 0.25), &state, &device);
        let after = features(&net, x.clone());
        let expected = features(&reference, x);
        for (level, (a, e)) in after.iter().zip(&expected).enumerate() {
            assert!(max_abs_diff(a, e) < 1e-5, "C{} differs", level + 3);
        }
        assert!(
            max_abs_diff(&after[2], &before[2]) > 1e-3,
            "loading changed nothing"
        );
    }

    /// Bottleneck blocks (conv3/bn3) and an MMDet detector layout with wrappers,
    /// stored as f64: converted to the model's f32.
    #[test]
    fn safetensors_mmdet_resnet50_f64_with_backbone_prefix() {
        let dir = Scratch::new("st50");
        let path = dir.file("detector.safetensors");
        let state = torchvision_state(50, 0.0625);
        let mut wrapped: Vec<(String, Entry)> = state
            .iter()
            .filter(|(n, _)| !n.starts_with("fc."))
            .map(|(n, e)| (format!("state_dict.backbone.{n}"), e.clone()))
            .collect();
        let neck = Entry {
            shape: vec![4, 4],
            values: vec![0.0; 16],
        };
        wrapped.push((
            "state_dict.neck.lateral_convs.0.conv.weight".into(),
            neck.clone(),
        ));
        wrapped.push(("optimizer.state.0.momentum_buffer".into(), neck));
        write_safetensors(&path, &wrapped, true);

        let device = Default::default();
        let (net, report) =
            load_resnet_weights(tiny(50, 0.0625), &path, &LoadOptions::default()).unwrap();
        let reason = |k: &str| {
            report
                .skipped
                .iter()
                .find(|s| s.key == k)
                .map(|s| s.reason.clone())
        };
        assert_eq!(
            reason("state_dict.neck.lateral_convs.0.conv.weight"),
            Some(SkipReason::NotBackbone)
        );
        assert_eq!(
            reason("optimizer.state.0.momentum_buffer"),
            Some(SkipReason::OutsideWrapper("state_dict".into()))
        );
        let bn3 = net.layer3[5].bn3.as_ref().unwrap();
        assert_eq!(bn3.gamma.val().dtype(), DType::F32);
        let got = values(&bn3.running_var);
        let want = &entry(&state, "layer3.5.bn3.running_var").values;
        assert!(
            max_abs_diff(&got, want) == 0.0,
            "f64 → f32 must round exactly"
        );

        let reference = assign_by_hand(tiny(50, 0.0625), &state, &device);
        let x = fixture_input::<Flex>(64, &device);
        let (a, e) = (features(&net, x.clone()), features(&reference, x));
        assert!(max_abs_diff(&a[2], &e[2]) < 1e-5);
    }

    /// (2) A real `torch.save` file (zip) of a torchvision ResNet-18 (width 1/32),
    /// checked against PyTorch's own forward pass. Both files and the expected
    /// features come from `tests/fixtures/make_resnet_fixtures.py` (torch 2.15,
    /// torchvision 0.29: torchvision's `ResNet._make_layer` / `BasicBlock` with
    /// random weights and random BN statistics, model in eval mode).
    #[test]
    fn pytorch_fixture_matches_torchvision_forward() {
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture("resnet18_w1_32_expected.json")).unwrap(),
        )
        .unwrap();
        let floats = |k: &str| -> Vec<f32> {
            expected[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        };
        let device = Default::default();
        for (file, wrapped) in [
            ("resnet18_w1_32_torchvision.pth", false),
            ("resnet18_w1_32_mmdet_legacy.pth", true),
        ] {
            let net = tiny(18, 1.0 / 32.0);
            let (net, report) = load_resnet_weights(net, &fixture(file), &LoadOptions::default())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(report.format, WeightFormat::PyTorch);
            assert!(report.missing.is_empty());
            if wrapped {
                assert!(report
                    .skipped
                    .iter()
                    .any(|s| s.key == "state_dict.neck.lateral_convs.0.conv.weight"
                        && s.reason == SkipReason::NotBackbone));
            } else {
                assert!(report
                    .skipped
                    .iter()
                    .any(|s| s.key == "fc.weight" && s.reason == SkipReason::Classifier));
            }
            let ds = net.layer2[0].downsample.as_ref().unwrap();
            assert_eq!(
                values(&ds.bn.running_var),
                floats("layer2.0.downsample.1.running_var"),
                "{file}"
            );
            let w = net.layer4[0]
                .conv1
                .weight
                .val()
                .slice([3..4, 5..6, 1..2, 2..3]);
            let w = w.into_data().convert::<f32>().to_vec::<f32>().unwrap()[0];
            assert_eq!(
                w,
                expected["layer4.0.conv1.weight[3,5,1,2]"].as_f64().unwrap() as f32
            );

            let got = features(&net, fixture_input::<Flex>(64, &device));
            for (level, key) in ["c3", "c4", "c5"].into_iter().enumerate() {
                let want = floats(key);
                let diff = max_abs_diff(&got[level], &want);
                // Measured 1.2e-7 (torch 2.15 CPU vs burn-flex).
                assert!(diff < 1e-5, "{file}: {key} differs from PyTorch by {diff}");
            }
        }
    }

    /// Frozen stages and BN statistics keep `require_grad = false` after loading,
    /// both for a fresh (lazily initialised) net and for one already used.
    #[test]
    fn loading_keeps_frozen_stages_frozen() {
        let path = fixture("resnet18_w1_32_torchvision.pth");
        let device = Default::default();
        for (frozen, warm) in [(1, false), (1, true), (-1, false), (2, true)] {
            let net = ResNetConfig::new(18)
                .with_width_mult(1.0 / 32.0)
                .with_frozen_stages(frozen)
                .init::<FlexAutodiff>(&device)
                .unwrap();
            if warm {
                // Initialises every lazy parameter before loading.
                let _ = net.forward(fixture_input::<FlexAutodiff>(32, &device));
            }
            let (net, _) = load_resnet_weights(net, &path, &LoadOptions::default()).unwrap();
            let mut probe = GradProbe::default();
            net.visit(&mut probe);
            // Stem 5, 8 basic blocks × 10, 3 downsample branches × 5.
            assert_eq!(probe.flags.len(), 5 + 8 * 10 + 3 * 5, "param count");
            for (p, grad) in &probe.flags {
                let stage = if p.starts_with("conv1") || p.starts_with("bn1") {
                    0
                } else {
                    p[5..6].parse::<i32>().unwrap()
                };
                let stats = p.ends_with("running_mean") || p.ends_with("running_var");
                let want = !stats && stage > frozen;
                assert_eq!(*grad, want, "{p} (frozen_stages {frozen}, warm {warm})");
            }
        }
    }

    #[derive(Default)]
    struct GradProbe {
        path: Vec<String>,
        flags: Vec<(String, bool)>,
    }

    impl<B: Backend> ModuleVisitor<B> for GradProbe {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.flags
                .push((self.path.join("."), param.val().is_require_grad()));
        }
    }

    #[test]
    fn key_mapping() {
        let keys: Vec<String> = [
            "conv1.weight",
            "bn1.weight",
            "bn1.num_batches_tracked",
            "layer1.0.downsample.0.weight",
            "layer1.0.downsample.1.bias",
            "layer3.5.bn3.running_var",
            "fc.weight",
            "bn1.gamma",
            "layer1.0.downsample.conv.weight",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let got = resolve_keys(&keys);
        assert_eq!(got[0], Ok("conv1.weight".into()));
        assert_eq!(got[1], Ok("bn1.gamma".into()));
        assert_eq!(got[2], Err(SkipReason::BatchCounter));
        assert_eq!(got[3], Ok("layer1.0.downsample.conv.weight".into()));
        assert_eq!(got[4], Ok("layer1.0.downsample.bn.beta".into()));
        assert_eq!(got[5], Ok("layer3.5.bn3.running_var".into()));
        assert_eq!(got[6], Err(SkipReason::Classifier));
        // Our own names pass through unchanged.
        assert_eq!(got[7], Ok("bn1.gamma".into()));
        assert_eq!(got[8], Ok("layer1.0.downsample.conv.weight".into()));
        // Wrappers: DataParallel's `module.` inside a checkpoint's `model`.
        let keys = vec!["model.module.bn1.bias".to_string(), "epoch_t".to_string()];
        assert_eq!(
            resolve_keys(&keys),
            vec![
                Ok("bn1.beta".into()),
                Err(SkipReason::OutsideWrapper("model".into()))
            ]
        );
        assert_eq!(
            torchvision_name("layer1.0.downsample.bn.gamma"),
            "layer1.0.downsample.1.weight"
        );
    }

    /// (3) Errors name the file, the offending key and the shapes; nothing panics.
    #[test]
    fn missing_or_unreadable_file() {
        let dir = Scratch::new("io");
        let path = dir.file("nope.pth");
        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, WeightError::Io { .. }), "{err}");
        assert!(err.to_string().contains("nope.pth"), "{err}");

        let err = load_resnet_weights(tiny(18, 0.25), &dir.0, &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, WeightError::Io { .. }), "{err}");
    }

    #[test]
    fn garbage_and_text_files_are_not_weight_files() {
        let dir = Scratch::new("garbage");
        // Bytes of a fixed LCG: no zip, pickle, tar or safetensors header.
        let mut s: u32 = 12345;
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (s >> 16) as u8
            })
            .collect();
        let cases: [(&str, &[u8], &str); 3] = [
            ("random.pth", &garbage, "unrecognised header bytes"),
            (
                "notes.safetensors",
                b"these are not weights\n",
                "looks like a text file",
            ),
            ("empty.pth", b"", "empty"),
        ];
        for (name, bytes, reason) in cases {
            let path = dir.file(name);
            std::fs::write(&path, bytes).unwrap();
            let err =
                load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
            assert!(matches!(err, WeightError::NotAWeightFile { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(name) && msg.contains(reason), "{msg}");
        }

        // A safetensors header that is not valid JSON: sniffed, then rejected by the reader.
        let path = dir.file("broken.safetensors");
        let mut bytes = 16u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{\"a\": [1, 2, 3 ");
        bytes.extend_from_slice(&[0; 8]);
        std::fs::write(&path, bytes).unwrap();
        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                WeightError::Parse {
                    format: WeightFormat::Safetensors,
                    ..
                }
            ),
            "{err}"
        );

        // A truncated zip: caught before burn's reader would parse the bytes as a pickle.
        let path = dir.file("truncated.pth");
        let torch = std::fs::read(fixture("resnet18_w1_32_torchvision.pth")).unwrap();
        std::fs::write(&path, &torch[..torch.len() / 2]).unwrap();
        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                WeightError::Parse {
                    format: WeightFormat::PyTorch,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");

        // A valid (empty) zip that is not a torch checkpoint: burn's reader rejects it.
        let path = dir.file("empty_zip.pth");
        let mut zip = b"PK\x05\x06".to_vec();
        zip.extend_from_slice(&[0; 18]);
        std::fs::write(&path, zip).unwrap();
        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                WeightError::Parse {
                    format: WeightFormat::PyTorch,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("data.pkl"), "{err}");

        // A bare pickle (protocol 2, `{}`): no tensor storage.
        let path = dir.file("plain.pkl");
        std::fs::write(&path, b"\x80\x02}q\x00.").unwrap();
        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, WeightError::NotAWeightFile { .. }), "{err}");
        assert!(err.to_string().contains("plain Python pickle"), "{err}");
    }

    #[test]
    fn shape_mismatch_names_key_and_shapes() {
        let dir = Scratch::new("shape");
        // A ResNet-50 file into a ResNet-18.
        let path = dir.file("r50.safetensors");
        write_safetensors(&path, &torchvision_state(50, 0.25), false);
        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, WeightError::ShapeMismatch { .. }), "{msg}");
        // layer1.0.conv1 is 1×1 in a bottleneck, 3×3 in a basic block.
        assert!(
            msg.contains(
                "`layer1.0.conv1.weight`: model expects [16, 16, 3, 3], file has [16, 16, 1, 1]"
            ),
            "{msg}"
        );

        // Width 0.5 into width 0.25.
        let path = dir.file("w05.safetensors");
        write_safetensors(&path, &torchvision_state(18, 0.5), false);
        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`conv1.weight`: model expects [16, 3, 7, 7], file has [32, 3, 7, 7]"),
            "{msg}"
        );
        assert!(
            msg.contains("`bn1.weight` (model `bn1.gamma`): model expects [16], file has [32]"),
            "{msg}"
        );
    }

    #[test]
    fn missing_keys_are_listed_or_allowed() {
        let dir = Scratch::new("missing");
        let path = dir.file("partial.safetensors");
        let state: Vec<(String, Entry)> = torchvision_state(18, 0.25)
            .into_iter()
            .filter(|(n, _)| n != "layer4.1.bn2.running_var" && n != "layer2.0.downsample.1.weight")
            .collect();
        write_safetensors(&path, &state, false);

        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        let msg = err.to_string();
        match &err {
            WeightError::MissingKeys { missing, .. } => assert_eq!(
                missing,
                &vec![
                    "layer2.0.downsample.bn.gamma".to_string(),
                    "layer4.1.bn2.running_var".to_string()
                ]
            ),
            other => panic!("{other}"),
        }
        assert!(msg.contains("`layer4.1.bn2.running_var`"), "{msg}");
        assert!(
            msg.contains(
                "`layer2.0.downsample.bn.gamma` (torchvision `layer2.0.downsample.1.weight`)"
            ),
            "{msg}"
        );

        let opts = LoadOptions::default().with_allow_missing(true);
        let (net, report) = load_resnet_weights(tiny(18, 0.25), &path, &opts).unwrap();
        assert_eq!(report.missing.len(), 2);
        // Kept the initial value (BN init: var 1, gamma 1).
        assert!(values(&net.layer4[1].bn2.running_var)
            .iter()
            .all(|v| *v == 1.0));
        assert_eq!(
            values(&net.layer4[1].bn2.running_mean),
            entry(&state, "layer4.1.bn2.running_mean").values
        );
    }

    #[test]
    fn two_keys_for_one_parameter_are_refused() {
        let dir = Scratch::new("dup");
        let path = dir.file("dup.safetensors");
        let mut state = torchvision_state(18, 0.25);
        let gamma = entry(&state, "bn1.weight").clone();
        state.push(("bn1.gamma".into(), gamma));
        write_safetensors(&path, &state, false);
        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, WeightError::DuplicateKey { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("`bn1.gamma`") && msg.contains("`bn1.weight`"),
            "{msg}"
        );
    }

    #[test]
    fn unexpected_keys_are_listed_or_ignored() {
        let dir = Scratch::new("unexpected");
        let path = dir.file("extra.safetensors");
        let mut state = torchvision_state(18, 0.25);
        let extra = |shape: Vec<usize>| Entry {
            values: vec![0.5; shape.iter().product()],
            shape,
        };
        state.push(("layer1.0.conv1.bias".into(), extra(vec![16])));
        state.push(("layer5.0.conv1.weight".into(), extra(vec![2, 2, 1, 1])));
        write_safetensors(&path, &state, false);

        let err = load_resnet_weights(tiny(18, 0.25), &path, &LoadOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, WeightError::UnexpectedKeys { .. }), "{msg}");
        assert!(
            msg.contains("`layer1.0.conv1.bias`") && msg.contains("`layer5.0.conv1.weight`"),
            "{msg}"
        );

        let opts = LoadOptions::default().with_allow_unexpected(true);
        let (_, report) = load_resnet_weights(tiny(18, 0.25), &path, &opts).unwrap();
        let unexpected: Vec<&str> = report
            .skipped
            .iter()
            .filter(|s| s.reason == SkipReason::Unexpected)
            .map(|s| s.key.as_str())
            .collect();
        assert_eq!(unexpected, ["layer1.0.conv1.bias", "layer5.0.conv1.weight"]);
    }
}

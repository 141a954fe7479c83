//! Backend selection: `--device flex|ndarray|cuda:N`.
//!
//! All model code is generic over burn's `Backend`; this module names the
//! concrete CPU/GPU backends we ship and parses the user's device string.
//! burn-flex is the default CPU backend: its conv backward is ~35× faster than
//! burn-ndarray's on our 2-core machines (see README), ndarray stays selectable
//! as the reference implementation.

use std::fmt;
use std::str::FromStr;

/// The default CPU backend (pure-Rust, SIMD).
pub type Flex = burn::backend::Flex;
/// The reference CPU backend.
pub type NdArray = burn::backend::NdArray;
/// The CUDA backend (feature `cuda`).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// Autodiff-wrapped default CPU backend, used for training and tests.
pub type FlexAutodiff = burn::backend::Autodiff<Flex>;

/// A device named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// burn-flex on the CPU (default).
    #[default]
    Flex,
    /// burn-ndarray on the CPU.
    NdArray,
    /// CUDA device with the given index (needs the `cuda` feature).
    Cuda(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Flex => write!(f, "flex"),
            DeviceSpec::NdArray => write!(f, "ndarray"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Error for an unparsable or unavailable `--device`.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The string is none of `flex`, `ndarray`, `cuda:N`.
    #[error("unknown device `{0}`: expected `flex`, `ndarray` or `cuda:N` (e.g. `cuda:0`)")]
    Unknown(String),
    /// CUDA was asked for in a build without the `cuda` feature.
    #[error("device `{0}` needs a build with CUDA support: rebuild with `--features cuda`")]
    CudaNotBuilt(String),
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    /// ```
    /// use crosskd_trainer::backend::DeviceSpec;
    /// assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
    /// assert!("tpu".parse::<DeviceSpec>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "flex" | "cpu" => Ok(DeviceSpec::Flex),
            "ndarray" => Ok(DeviceSpec::NdArray),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| DeviceError::Unknown(s.to_string())),
        }
    }
}

impl DeviceSpec {
    /// Parse a comma-separated device list (`cuda:0,cuda:1`).
    pub fn parse_list(s: &str) -> Result<Vec<DeviceSpec>, DeviceError> {
        s.split(',').map(str::parse).collect()
    }

    /// Fails early when the device's backend is not compiled in.
    pub fn check_available(&self) -> Result<(), DeviceError> {
        match self {
            DeviceSpec::Cuda(_) if !cfg!(feature = "cuda") => {
                Err(DeviceError::CudaNotBuilt(self.to_string()))
            }
            _ => Ok(()),
        }
    }
}

/// Set the number of CPU threads burn-flex (rayon) uses; call before any tensor work.
pub fn set_cpu_threads(threads: usize) {
    if threads > 0 {
        // Ignore the error when a global pool already exists: then it is already sized.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}

/// Call a generic function `f::<B>(&device, args...)` with the autodiff
/// backend named by a [`DeviceSpec`] (`flex`, `ndarray` or `cuda:N`).
#[macro_export]
macro_rules! with_autodiff_backend {
    ($spec:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $spec {
            $crate::backend::DeviceSpec::Flex => {
                $f::<burn::backend::Autodiff<$crate::backend::Flex>>(&Default::default() $(, $arg)*)
            }
            $crate::backend::DeviceSpec::NdArray => {
                $f::<burn::backend::Autodiff<$crate::backend::NdArray>>(&Default::default() $(, $arg)*)
            }
            #[cfg(feature = "cuda")]
            $crate::backend::DeviceSpec::Cuda(i) => $f::<burn::backend::Autodiff<$crate::backend::Cuda>>(
                &burn::backend::cuda::CudaDevice::new(i)
                $(, $arg)*
            ),
            #[cfg(not(feature = "cuda"))]
            $crate::backend::DeviceSpec::Cuda(_) => {
                unreachable!("DeviceSpec::check_available rejects CUDA without the `cuda` feature")
            }
        }
    };
}

/// Like [`with_autodiff_backend!`] for inference-only backends.
#[macro_export]
macro_rules! with_backend {
    ($spec:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $spec {
            $crate::backend::DeviceSpec::Flex => $f::<$crate::backend::Flex>(&Default::default() $(, $arg)*),
            $crate::backend::DeviceSpec::NdArray => $f::<$crate::backend::NdArray>(&Default::default() $(, $arg)*),
            #[cfg(feature = "cuda")]
            $crate::backend::DeviceSpec::Cuda(i) => {
                $f::<$crate::backend::Cuda>(&burn::backend::cuda::CudaDevice::new(i) $(, $arg)*)
            }
            #[cfg(not(feature = "cuda"))]
            $crate::backend::DeviceSpec::Cuda(_) => {
                unreachable!("DeviceSpec::check_available rejects CUDA without the `cuda` feature")
            }
        }
    };
}

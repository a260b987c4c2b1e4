//! Why a calibration-based reconstruction could not run.

use thiserror::Error;

/// Bad input to one of the [`calib`](super) functions, or a Hessian that
/// stays numerically unusable. Every variant renders as one line.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CalibError {
    /// An input dimension of zero, or one whose Hessian would be too large
    /// to hold.
    #[error("input dimension {dim} is outside 1..={max}")]
    Dim { dim: usize, max: usize },
    /// A buffer's length does not match the shape it is used with.
    #[error("{what} has {len} values but {expected} are expected")]
    Length {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    /// Two Hessians of different input dimensions cannot be merged.
    #[error("cannot merge a Hessian of dimension {other} into one of dimension {dim}")]
    DimMismatch { dim: usize, other: usize },
    /// A sparsity target outside `[0, 1]`.
    #[error("sparsity {0} is outside [0, 1]")]
    Sparsity(f64),
    /// A dampening fraction that is negative or not finite.
    #[error("dampening {0} is not a finite non-negative number")]
    Damp(f64),
    /// A weight, or an entry of the accumulated Hessian, is NaN or infinite.
    #[error("{0} contains a NaN or infinite value")]
    NonFinite(&'static str),
    /// The codebook cannot quantize: empty while there are weights,
    /// not ascending, or with a non-finite entry.
    #[error("codebook is unusable: {0}")]
    Codebook(&'static str),
    /// The codebook has more entries than a `u32` assignment can address.
    #[error("codebook has {0} entries, more than a u32 index can address")]
    CodebookTooLarge(usize),
    /// The dampened Hessian stayed non-positive-definite at every
    /// dampening level tried.
    #[error("Hessian is not positive definite even with dampening {damp} of its mean diagonal")]
    NotPositiveDefinite { damp: f64 },
}

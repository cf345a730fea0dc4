//! The one error type of kiln. Variants are grouped by kind and each names
//! the thing at fault (file, layer, tensor, both shapes).

use std::path::PathBuf;

/// `Result` with kiln's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong at run time. Per-sample shape mistakes are
/// compile errors and have no variant here; only the run-time batch size,
/// buffer lengths that come from user data, and the outside world can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[allow(missing_docs)] // variant fields are named for what they hold; the messages document them
pub enum Error {
    // ---- shapes and batches -------------------------------------------------
    /// Two tensors that must describe the same samples disagree on how many.
    #[error(
        "batch size mismatch in {op}: {left_name} has {left} samples but {right_name} has {right}"
    )]
    BatchMismatch {
        op: &'static str,
        left_name: &'static str,
        left: usize,
        right_name: &'static str,
        right: usize,
    },
    /// A host buffer handed to a tensor constructor has the wrong length.
    #[error("{what}: expected {expected} values ({shape}), got {got}")]
    LengthMismatch {
        what: String,
        expected: usize,
        shape: String,
        got: usize,
    },
    /// A class label is not below the class count of the logits it is paired with.
    #[error("label {label} at sample {index} is out of range for {classes} classes")]
    LabelOutOfRange {
        index: usize,
        label: usize,
        classes: usize,
    },
    /// A token id is not below the vocabulary size of the [`crate::Tokens`] it is put in.
    #[error("token id {id} at sample {sample}, position {position} is out of range for a vocabulary of {vocab}")]
    TokenOutOfRange {
        sample: usize,
        position: usize,
        id: u32,
        vocab: usize,
    },
    /// A batch of zero samples reached an operation that needs at least one.
    #[error("{op}: empty batch (0 samples)")]
    EmptyBatch { op: &'static str },
    /// A loss or a tensor became NaN or infinite.
    #[error("non-finite value in {what}: {value}")]
    NonFinite { what: String, value: f64 },
    /// A user-supplied hyper-parameter is outside its domain.
    #[error("invalid argument to {op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },

    // ---- data ------------------------------------------------------------------
    /// A file could not be read or written.
    #[error("{}: {source}", shown(path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A data file exists but its contents are not what the format promises.
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// A data set that an example needs is not where it should be.
    #[error("{what} not found: {} is missing; {hint}", path.display())]
    MissingData {
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },

    /// A checkpoint does not fit the model: every problem, by tensor name.
    #[error("{}: checkpoint does not match the model ({} problem{}):\n  {}", path.display(), problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.join("\n  "))]
    Checkpoint {
        path: PathBuf,
        problems: Vec<String>,
    },

    // ---- devices ---------------------------------------------------------------
    /// A device could not be opened or used (missing driver or library, no GPU).
    #[error("device {device}: {msg}")]
    Device { device: String, msg: String },
}

/// A path as an error shows it: an empty one as `"" (an empty path)`, so the
/// message never starts with a bare `: `.
fn shown(path: &std::path::Path) -> String {
    if path.as_os_str().is_empty() {
        "\"\" (an empty path)".into()
    } else {
        path.display().to_string()
    }
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }
}

/// Fails with [`Error::BatchMismatch`] unless `left == right`.
pub fn check_batch(
    op: &'static str,
    left_name: &'static str,
    left: usize,
    right_name: &'static str,
    right: usize,
) -> Result<()> {
    if left == right {
        Ok(())
    } else {
        Err(Error::BatchMismatch {
            op,
            left_name,
            left,
            right_name,
            right,
        })
    }
}

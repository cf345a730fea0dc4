//! The one error type of kiln. Variants are grouped by kind and each names
//! the thing at fault (file, layer, tensor, both shapes).

use std::path::PathBuf;

/// `Result` with kiln's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong at run time. Per-sample shape mistakes are
/// compile errors and have no variant here; only the run-time batch size,
/// buffer lengths that come from user data, and the outside world can fail.
///
/// `{:?}` prints the message, as `{}` does (as anyhow's errors do), so a
/// `main() -> kiln::Result<()>` that fails prints `Error: <message>`; `{:#?}`
/// prints the structured form (the variant and its fields).
#[derive(thiserror::Error)]
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

    // ---- export ----------------------------------------------------------------
    /// A layer of a network being exported to ONNX has no ONNX form
    /// (`kiln::onnx`); nothing was written.
    #[error("ONNX export: layer `{layer}` ({kind}) has no ONNX form in kiln yet; nothing was written (docs/onnx.md lists the layers that export)")]
    OnnxUnsupported { layer: String, kind: String },

    // ---- devices ---------------------------------------------------------------
    /// A device could not be opened or used (missing driver or library, no GPU).
    #[error("device {device}: {msg}")]
    Device { device: String, msg: String },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !f.alternate() {
            return std::fmt::Display::fmt(self, f);
        }
        match self {
            Error::BatchMismatch {
                op,
                left_name,
                left,
                right_name,
                right,
            } => f
                .debug_struct("BatchMismatch")
                .field("op", op)
                .field("left_name", left_name)
                .field("left", left)
                .field("right_name", right_name)
                .field("right", right)
                .finish(),
            Error::LengthMismatch {
                what,
                expected,
                shape,
                got,
            } => f
                .debug_struct("LengthMismatch")
                .field("what", what)
                .field("expected", expected)
                .field("shape", shape)
                .field("got", got)
                .finish(),
            Error::LabelOutOfRange {
                index,
                label,
                classes,
            } => f
                .debug_struct("LabelOutOfRange")
                .field("index", index)
                .field("label", label)
                .field("classes", classes)
                .finish(),
            Error::TokenOutOfRange {
                sample,
                position,
                id,
                vocab,
            } => f
                .debug_struct("TokenOutOfRange")
                .field("sample", sample)
                .field("position", position)
                .field("id", id)
                .field("vocab", vocab)
                .finish(),
            Error::EmptyBatch { op } => f.debug_struct("EmptyBatch").field("op", op).finish(),
            Error::NonFinite { what, value } => f
                .debug_struct("NonFinite")
                .field("what", what)
                .field("value", value)
                .finish(),
            Error::InvalidArgument { op, msg } => f
                .debug_struct("InvalidArgument")
                .field("op", op)
                .field("msg", msg)
                .finish(),
            Error::Io { path, source } => f
                .debug_struct("Io")
                .field("path", path)
                .field("source", source)
                .finish(),
            Error::Format { path, msg } => f
                .debug_struct("Format")
                .field("path", path)
                .field("msg", msg)
                .finish(),
            Error::MissingData { what, path, hint } => f
                .debug_struct("MissingData")
                .field("what", what)
                .field("path", path)
                .field("hint", hint)
                .finish(),
            Error::Checkpoint { path, problems } => f
                .debug_struct("Checkpoint")
                .field("path", path)
                .field("problems", problems)
                .finish(),
            Error::OnnxUnsupported { layer, kind } => f
                .debug_struct("OnnxUnsupported")
                .field("layer", layer)
                .field("kind", kind)
                .finish(),
            Error::Device { device, msg } => f
                .debug_struct("Device")
                .field("device", device)
                .field("msg", msg)
                .finish(),
        }
    }
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
    /// A non-finite loss with where it happened: the training step (counted
    /// from 1) and the learning rate then, and how to find the layer that
    /// produced it; other errors are returned unchanged. A training loop
    /// writes `cross_entropy(…).map_err(|e| e.at_step(step, opt.lr()))?`.
    pub fn at_step(self, step: u64, lr: f64) -> Self {
        match self {
            Error::NonFinite { what, value } => Error::NonFinite {
                what: format!(
                    "{what} at step {step} (learning rate {lr}; a NaN or too large learning rate, a poisoned input or weight, or divergence: set `tape.ctx.detect_anomaly = true` to name the first layer that produced it)"
                ),
                value,
            },
            e => e,
        }
    }

    /// This error as a problem of the file `path` (an [`Error::Format`]
    /// naming it, its message kept), unless it already names a file.
    pub fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            e @ (Error::Io { .. }
            | Error::Format { .. }
            | Error::MissingData { .. }
            | Error::Checkpoint { .. }) => e,
            e => Error::Format {
                path: path.to_path_buf(),
                msg: e.to_string(),
            },
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_the_message_and_alternate_debug_the_fields() {
        let e = Error::BatchMismatch {
            op: "cross_entropy",
            left_name: "logits",
            left: 4,
            right_name: "labels",
            right: 3,
        };
        let msg = "batch size mismatch in cross_entropy: logits has 4 samples but labels has 3";
        assert_eq!(format!("{e}"), msg);
        assert_eq!(format!("{e:?}"), msg);
        let s = format!("{e:#?}");
        assert!(s.starts_with("BatchMismatch {"), "{s}");
        assert!(
            s.contains("left: 4,") && s.contains("right_name: \"labels\""),
            "{s}"
        );
        let io = Error::Io {
            path: "data/x.idx".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(format!("{io:?}").starts_with("data/x.idx: "), "{io:?}");
        assert!(
            format!("{io:#?}").contains("path: \"data/x.idx\""),
            "{io:#?}"
        );
    }
}

//! Data: readers for the course's data sets (IDX, CSV), seeded mini-batches
//! ([`DataLoader`]), image augmentation, train/validation splits, and text
//! (character and word tokenizers, Shakespeare's works split by work).

pub mod augment;
pub mod csv;
pub mod idx;
pub mod loader;
pub mod mnist;
pub mod split;
pub mod text;

pub use augment::ImageShape;
pub use csv::{read_csv, CsvOptions, Table};
pub use idx::{read_idx, Idx};
pub use loader::{Batch, Batches, DataLoader, Position, Source};
pub use mnist::{Dataset, Mnist};
pub use text::{CharTokenizer, Shakespeare, WordTokenizer};

/// Reads a whole data file. It must be a regular file (or a link to one): a
/// FIFO or a device would block or never end, and a directory is a mistake,
/// so each is refused up front with an error naming the path. Every reader
/// of a user's file (idx, CSV, text, checkpoints) reads through this.
pub fn read_file(path: &std::path::Path) -> crate::Result<Vec<u8>> {
    let io = |source| crate::Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        let kind = file_kind(&meta);
        return Err(crate::Error::Format {
            path: path.to_path_buf(),
            msg: format!("not a regular file but {kind}; give the path of a data file"),
        });
    }
    std::fs::read(path).map_err(io)
}

/// What a path that is not a regular file is, for [`read_file`]'s message.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

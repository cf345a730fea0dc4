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

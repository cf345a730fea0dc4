//! Data: readers for the course's data sets and seeded mini-batches.

pub mod idx;
pub mod mnist;

pub use idx::{read_idx, Idx};
pub use mnist::{Dataset, Mnist};

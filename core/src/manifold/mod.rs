//! Maps of high-dimensional data in two dimensions: principal components
//! ([`pca`], [`pca_2d`]), exact t-SNE ([`tsne`]), the leave-one-out k-nearest
//! -neighbour accuracy that scores such a map ([`knn_accuracy`]) and, with the
//! `plot` feature, class-coloured scatter plots ([`scatter::plot_scatter`]).
//!
//! The data are rows of `f32` (a layer's activations), `n × dim` row-major;
//! maps are `[f64; 2]` per row.

pub mod knn;
pub mod pca;
#[cfg(feature = "plot")]
pub mod scatter;
pub mod tsne;

pub use knn::knn_accuracy;
pub use pca::{pca, pca_2d, Pca};
pub use tsne::{joint_probabilities, kl_divergence, tsne, tsne_gradient, Tsne, TsneConfig};

use crate::error::{Error, Result};

/// Checks that `x` holds `n ≥ min_rows` rows of `dim > 0` finite values;
/// returns `n`. `op` names the caller in the error.
pub(crate) fn rows(op: &'static str, x: &[f32], dim: usize, min_rows: usize) -> Result<usize> {
    if dim == 0 {
        return Err(Error::invalid(op, "the row length `dim` is 0"));
    }
    if !x.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            op,
            format!("{} values are not a whole number of rows of {dim}", x.len()),
        ));
    }
    let n = x.len() / dim;
    if n < min_rows {
        return Err(Error::invalid(
            op,
            format!("needs at least {min_rows} rows, got {n}"),
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            op,
            format!("value {} of row {} is {}", i % dim, i / dim, x[i]),
        ));
    }
    Ok(n)
}

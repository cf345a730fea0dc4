//! The leave-one-out k-nearest-neighbour accuracy of labelled points: the
//! share of points whose class is the majority among their `k` nearest
//! other points (Euclidean). A tie between classes goes to the tied class
//! whose nearest member is closest. On a 2-D map it measures how well the
//! map keeps the classes apart (the t-SNE paper's "1-NN error" with `k` = 1).

use crate::error::{Error, Result};

/// Leave-one-out `k`-NN accuracy of `points` (`dim` values per point,
/// row-major) with classes `labels`. O(n²·dim), in parallel over points.
///
/// ```
/// use kiln_core::manifold::knn_accuracy;
/// // Two clusters on a line; the point at 2.8 is labelled 0 but sits among
/// // class 1: its nearest neighbour (3.0) says 1, every other point's is right.
/// let x = [0.0, 0.1, 0.2, 3.0, 3.1, 2.8];
/// let y = [0, 0, 0, 1, 1, 0];
/// assert_eq!(knn_accuracy(&x, 1, &y, 1)?, 5.0 / 6.0);
/// # Ok::<(), kiln_core::Error>(())
/// ```
pub fn knn_accuracy(points: &[f64], dim: usize, labels: &[usize], k: usize) -> Result<f64> {
    use rayon::prelude::*;
    if dim == 0 || !points.len().is_multiple_of(dim) {
        return Err(Error::invalid(
            "knn_accuracy",
            format!("{} values are not rows of {dim}", points.len()),
        ));
    }
    let n = points.len() / dim;
    if labels.len() != n {
        return Err(Error::invalid(
            "knn_accuracy",
            format!("{n} points but {} labels", labels.len()),
        ));
    }
    if k == 0 || k >= n {
        return Err(Error::invalid(
            "knn_accuracy",
            format!("k = {k} neighbours among {n} points (1 ≤ k < n)"),
        ));
    }
    if points.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("knn_accuracy", "a coordinate is not finite"));
    }
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let correct: usize = (0..n)
        .into_par_iter()
        .map(|i| {
            let pi = &points[i * dim..(i + 1) * dim];
            // The k smallest (distance², index), kept sorted.
            let mut best: Vec<(f64, usize)> = Vec::with_capacity(k + 1);
            for j in (0..n).filter(|&j| j != i) {
                let d: f64 = pi
                    .iter()
                    .zip(&points[j * dim..(j + 1) * dim])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                if best.len() < k || d < best[k - 1].0 {
                    let at = best.partition_point(|&(e, _)| e <= d);
                    best.insert(at, (d, j));
                    best.truncate(k);
                }
            }
            let mut votes = vec![0usize; classes];
            for &(_, j) in &best {
                votes[labels[j]] += 1;
            }
            let top = votes.iter().copied().max().unwrap_or(0);
            // Sorted by distance: the first neighbour of a tied class wins.
            let pred = best
                .iter()
                .map(|&(_, j)| labels[j])
                .find(|&c| votes[c] == top)
                .unwrap_or(usize::MAX);
            usize::from(pred == labels[i])
        })
        .sum();
    Ok(correct as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_nn_by_hand() {
        // Class 0 around the origin, class 1 around (10, 0); point 6 (class 1)
        // sits at (1, 0) inside class 0, point 7 (class 0) at (9, 0).
        let pts = [
            0.0, 0.0, 0.5, 0.0, 0.0, 0.5, -0.5, 0.0, 0.0, -0.5, // 0–4: class 0
            10.0, 0.0, 1.0, 0.0, // 5: class 1, 6: class 1 (misplaced)
            9.0, 0.0, 10.5, 0.0, 10.0, 0.5, 9.5, 0.5, 10.0,
            -0.5, // 7: class 0 (misplaced), 8–11: class 1
        ];
        let y = [0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1];
        // With k = 5 the two misplaced points are wrong, every other right:
        // point 5's neighbours are 8, 9, 10, 11 (class 1) and 7: 4 to 1.
        assert_eq!(knn_accuracy(&pts, 2, &y, 5).unwrap(), 10.0 / 12.0);
        // k = 2: point 7's nearest are 10 (distance² 0.5) and 5 (1), both
        // class 1: wrong; point 6's are 1 (0.25) and 0 (1), class 0: wrong;
        // point 1's are 0 and 6 (both 0.25), a 1–1 tie that goes to the
        // first found, 0: right.
        assert_eq!(knn_accuracy(&pts, 2, &y, 2).unwrap(), 10.0 / 12.0);
    }

    #[test]
    fn tie_goes_to_the_nearest_class() {
        let x = [0.0, 1.0, -2.0, 1.5, -2.5];
        let y = [1, 1, 2, 1, 2];
        // k = 2. Point 0: {1, 3} → 1 ✓. Point 1: {3, 0} → 1 ✓.
        // Point 2 (at −2): {4 (class 2, d² 0.25), 0 (class 1, d² 4)}, a tie
        // that goes to the nearer, 2 ✓. Point 3: {1, 0} → 1 ✓.
        // Point 4: {2, 0} → tie, 2 nearer → 2 ✓. Ties going the other way
        // would get points 2 and 4 wrong.
        assert_eq!(knn_accuracy(&x, 1, &y, 2).unwrap(), 1.0);
    }

    #[test]
    fn mistakes_are_named() {
        let e = knn_accuracy(&[0.0; 4], 2, &[0, 1, 2], 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 points but 3 labels"), "{e}");
        let e = knn_accuracy(&[0.0; 4], 2, &[0, 1], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("k = 2"), "{e}");
        let e = knn_accuracy(&[0.0; 3], 2, &[0], 1).unwrap_err().to_string();
        assert!(e.contains("not rows of 2"), "{e}");
    }
}

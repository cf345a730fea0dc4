//! Principal component analysis by the eigen-decomposition of the sample
//! covariance (cyclic Jacobi rotations: exact to rounding for the few hundred
//! dimensions of a layer's activations).
//!
//! With the rows `x_i` centred on their mean `μ`, the covariance is
//! `Σ = (1/(n−1)) Σ_i (x_i − μ)(x_i − μ)ᵀ`; its eigenvectors `v_1, v_2, …`
//! by decreasing eigenvalue `λ_1 ≥ λ_2 ≥ …` are the principal directions,
//! and the map of `x` is `((x − μ)·v_1, (x − μ)·v_2, …)`. Each eigenvector's
//! sign is fixed so that its largest-magnitude entry is positive, so the map
//! does not flip between runs.

use super::rows;
use crate::error::{Error, Result};

/// Principal components of a data set.
#[derive(Clone, Debug)]
pub struct Pca {
    /// Row length of the data.
    pub dim: usize,
    /// The mean row `μ`.
    pub mean: Vec<f64>,
    /// The `k` leading eigenvectors, `k × dim` row-major (unit length).
    pub components: Vec<f64>,
    /// Their eigenvalues: the variance along each, decreasing.
    pub variances: Vec<f64>,
    /// The total variance (trace of the covariance).
    pub total_variance: f64,
}

impl Pca {
    /// The share of the total variance the components explain, each.
    pub fn explained_ratio(&self) -> Vec<f64> {
        self.variances
            .iter()
            .map(|v| v / self.total_variance.max(f64::MIN_POSITIVE))
            .collect()
    }

    /// The coordinates of rows `x` (`n × dim`) along the components, `n × k`.
    pub fn project(&self, x: &[f32]) -> Result<Vec<f64>> {
        let n = rows("Pca::project", x, self.dim, 0)?;
        let k = self.variances.len();
        let mut out = vec![0.0; n * k];
        for (row, o) in x.chunks_exact(self.dim).zip(out.chunks_exact_mut(k)) {
            for (c, o) in o.iter_mut().enumerate() {
                let v = &self.components[c * self.dim..(c + 1) * self.dim];
                *o = row
                    .iter()
                    .zip(&self.mean)
                    .zip(v)
                    .map(|((&x, m), v)| (x as f64 - m) * v)
                    .sum();
            }
        }
        Ok(out)
    }
}

/// The `k` leading principal components of the rows of `x` (`n × dim`,
/// `n ≥ 2`, `1 ≤ k ≤ dim`).
pub fn pca(x: &[f32], dim: usize, k: usize) -> Result<Pca> {
    let n = rows("pca", x, dim, 2)?;
    if k == 0 || k > dim {
        return Err(Error::invalid(
            "pca",
            format!("k = {k} components of {dim}-dimensional rows (1 ≤ k ≤ {dim})"),
        ));
    }
    let mut mean = vec![0.0f64; dim];
    for row in x.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0f64; dim * dim];
    let mut c = vec![0.0f64; dim];
    for row in x.chunks_exact(dim) {
        for ((c, &v), m) in c.iter_mut().zip(row).zip(&mean) {
            *c = v as f64 - m;
        }
        for a in 0..dim {
            let ca = c[a];
            for b in a..dim {
                cov[a * dim + b] += ca * c[b];
            }
        }
    }
    for a in 0..dim {
        for b in a..dim {
            let v = cov[a * dim + b] / (n - 1) as f64;
            cov[a * dim + b] = v;
            cov[b * dim + a] = v;
        }
    }
    let total_variance = (0..dim).map(|a| cov[a * dim + a]).sum();
    let (vals, vecs) = symmetric_eigen(&mut cov, dim);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
    let mut components = Vec::with_capacity(k * dim);
    for &j in &order[..k] {
        // Column j of the eigenvector matrix.
        let mut v: Vec<f64> = (0..dim).map(|i| vecs[i * dim + j]).collect();
        let big = v
            .iter()
            .copied()
            .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        if big < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        components.extend(v);
    }
    Ok(Pca {
        dim,
        mean,
        components,
        variances: order[..k].iter().map(|&j| vals[j].max(0.0)).collect(),
        total_variance,
    })
}

/// The map of the rows of `x` on their first two principal components, and
/// the decomposition.
pub fn pca_2d(x: &[f32], dim: usize) -> Result<(Vec<[f64; 2]>, Pca)> {
    let p = pca(x, dim, 2.min(dim))?;
    let proj = p.project(x)?;
    let pts = if p.variances.len() == 2 {
        proj.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
    } else {
        proj.iter().map(|&v| [v, 0.0]).collect()
    };
    Ok((pts, p))
}

/// Eigenvalues and eigenvectors (columns of the returned `d × d` matrix) of
/// the symmetric `a` (destroyed), by cyclic Jacobi rotations: each rotation
/// `J(p, q, θ)` with `tan 2θ = 2a_pq / (a_qq − a_pp)` zeroes `a_pq`; sweeps
/// repeat until the off-diagonal mass is below `1e-15` of the total.
pub(crate) fn symmetric_eigen(a: &mut [f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    let norm: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j] * a[i * d + j])
            .sum();
        if off <= 1e-30 * norm.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_known_matrix() {
        // [[2, 1], [1, 2]]: eigenvalues 3 (along (1, 1)/√2) and 1.
        let mut a = vec![2.0, 1.0, 1.0, 2.0];
        let (vals, vecs) = symmetric_eigen(&mut a, 2);
        let (big, small) = if vals[0] > vals[1] { (0, 1) } else { (1, 0) };
        assert!((vals[big] - 3.0).abs() < 1e-12 && (vals[small] - 1.0).abs() < 1e-12);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((vecs[big].abs() - h).abs() < 1e-12 && (vecs[2 + big].abs() - h).abs() < 1e-12);
        // A 4×4 with a reconstruction check: A = V Λ Vᵀ.
        let m = [
            4.0, 1.0, -2.0, 0.5, 1.0, 3.0, 0.0, 1.0, -2.0, 0.0, 5.0, -1.0, 0.5, 1.0, -1.0, 2.0,
        ];
        let mut a = m.to_vec();
        let (vals, v) = symmetric_eigen(&mut a, 4);
        for i in 0..4 {
            for j in 0..4 {
                let r: f64 = (0..4).map(|k| v[i * 4 + k] * vals[k] * v[j * 4 + k]).sum();
                assert!((r - m[i * 4 + j]).abs() < 1e-12, "{i} {j}: {r}");
            }
        }
    }

    #[test]
    fn pca_of_points_on_a_line_by_hand() {
        // Points (t, 2t, 5) for t = −1, 0, 1, 2: mean (0.5, 1, 5), all
        // variance along (1, 2, 0)/√5; var(t) = 5/3, so λ₁ = 5·5/3 = 25/3.
        let x: Vec<f32> = [-1.0f32, 0.0, 1.0, 2.0]
            .iter()
            .flat_map(|&t| [t, 2.0 * t, 5.0])
            .collect();
        let p = pca(&x, 3, 2).unwrap();
        assert_eq!(p.mean, [0.5, 1.0, 5.0]);
        assert!(
            (p.variances[0] - 25.0 / 3.0).abs() < 1e-12,
            "{:?}",
            p.variances
        );
        assert!(p.variances[1].abs() < 1e-12);
        assert!((p.total_variance - 25.0 / 3.0).abs() < 1e-12);
        let s = 5f64.sqrt();
        for (c, w) in p.components[..3].iter().zip([1.0 / s, 2.0 / s, 0.0]) {
            assert!((c - w).abs() < 1e-12, "{:?}", p.components);
        }
        let (pts, _) = pca_2d(&x, 3).unwrap();
        // t − 0.5 times √5 along the first axis.
        for (pt, t) in pts.iter().zip([-1.0, 0.0, 1.0, 2.0]) {
            assert!((pt[0] - (t - 0.5) * s).abs() < 1e-6 && pt[1].abs() < 1e-6);
        }
        assert!((p.explained_ratio()[0] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mistakes_are_named() {
        let e = pca(&[1.0, 2.0, 3.0], 2, 1).unwrap_err().to_string();
        assert!(e.contains("not a whole number of rows of 2"), "{e}");
        let e = pca(&[1.0, 2.0], 2, 1).unwrap_err().to_string();
        assert!(e.contains("at least 2 rows, got 1"), "{e}");
        let e = pca(&[1.0, 2.0, 3.0, 4.0], 2, 3).unwrap_err().to_string();
        assert!(e.contains("k = 3"), "{e}");
        let e = pca(&[1.0, f32::NAN, 3.0, 4.0], 2, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("value 1 of row 0 is NaN"), "{e}");
    }
}

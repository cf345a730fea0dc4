//! Metrics of generated samples, read through a classifier: confidence,
//! class diversity and the Fréchet distance between feature distributions.
//!
//! * [`mean_max_probability`]: the mean over samples of `max_c p(c | x)`,
//!   how sure the classifier is that a sample is *some* class (1 for clear
//!   digits, near `1/C` for noise).
//! * [`class_entropy`]: the entropy `−Σ_c h_c log h_c` (nats) of the
//!   histogram `h` of predicted classes: `log C` when every class is
//!   predicted equally often, 0 when one class takes every sample (a
//!   collapsed generator).
//! * [`frechet_distance`]: between the Gaussians fitted to two sets of
//!   feature rows, `‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})` — the FID of
//!   Heusel et al. (2017) when the features are Inception's; with another
//!   network's penultimate layer it is the same statistic on other features.
//!   The trace of the square root is computed as
//!   `Tr((Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}) = Σ √λ_i`, the matrix being symmetric
//!   and similar to `Σ₁ Σ₂`; both square roots come from [`sym_eigen`], a
//!   cyclic Jacobi eigensolver in f64 (negative eigenvalues from round-off
//!   are taken as 0). Covariances are the unbiased ones (`1/(n − 1)`), as
//!   `numpy.cov` and the reference FID code use.

use crate::error::{Error, Result};

/// The mean of `max_c p_c` over rows of `classes` probabilities.
pub fn mean_max_probability(probs: &[f64], classes: usize) -> Result<f64> {
    let rows = check_rows("mean_max_probability", probs, classes)?;
    let sum: f64 = probs
        .chunks_exact(classes)
        .map(|r| r.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        .sum();
    Ok(sum / rows as f64)
}

/// The entropy in nats of the histogram of `predicted` classes (each below
/// `classes`): `−Σ_c h_c log h_c`, `h_c` the fraction predicted as `c`.
pub fn class_entropy(predicted: &[u32], classes: usize) -> Result<f64> {
    if predicted.is_empty() {
        return Err(Error::EmptyBatch {
            op: "class_entropy",
        });
    }
    let mut counts = vec![0usize; classes];
    for &p in predicted {
        match counts.get_mut(p as usize) {
            Some(c) => *c += 1,
            None => {
                return Err(Error::invalid(
                    "class_entropy",
                    format!("predicted class {p} is not below the class count {classes}"),
                ))
            }
        }
    }
    let n = predicted.len() as f64;
    Ok(counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            // h log(1/h): exactly +0 for h = 1 (a lone class), never −0.
            let h = c as f64 / n;
            h * (n / c as f64).ln()
        })
        .sum())
}

/// The mean and the unbiased covariance (`dim × dim`, row-major) of rows of
/// `dim` features.
pub fn mean_covariance(rows: &[f64], dim: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = check_rows("mean_covariance", rows, dim)?;
    if n < 2 {
        return Err(Error::invalid(
            "mean_covariance",
            "needs at least 2 rows for a covariance",
        ));
    }
    let mut mean = vec![0.0; dim];
    for r in rows.chunks_exact(dim) {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0; dim * dim];
    let mut c = vec![0.0; dim];
    for r in rows.chunks_exact(dim) {
        for ((c, v), m) in c.iter_mut().zip(r).zip(&mean) {
            *c = v - m;
        }
        for i in 0..dim {
            let ci = c[i];
            for j in i..dim {
                cov[i * dim + j] += ci * c[j];
            }
        }
    }
    for i in 0..dim {
        for j in i..dim {
            let v = cov[i * dim + j] / (n - 1) as f64;
            cov[i * dim + j] = v;
            cov[j * dim + i] = v;
        }
    }
    Ok((mean, cov))
}

/// Eigenvalues and eigenvectors of a symmetric `n × n` matrix (row-major),
/// by cyclic Jacobi rotations until the off-diagonal mass is below
/// `1e-22 ·` the total (at most 100 sweeps). Returns the eigenvalues and a
/// row-major matrix whose column `k` is the unit eigenvector of value `k`.
/// Only the upper triangle is required to be meaningful if the matrix is
/// symmetric; a matrix that is not symmetric to 1e-9 (relative) is an error.
pub fn sym_eigen(a: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if a.len() != n * n {
        return Err(Error::LengthMismatch {
            what: "sym_eigen matrix".into(),
            expected: n * n,
            shape: format!("{n} × {n}"),
            got: a.len(),
        });
    }
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for i in 0..n {
        for j in 0..i {
            if (a[i * n + j] - a[j * n + i]).abs() > 1e-9 * scale.max(f64::MIN_POSITIVE) {
                return Err(Error::invalid(
                    "sym_eigen",
                    format!("the matrix is not symmetric at ({i}, {j})"),
                ));
            }
        }
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "sym_eigen",
            "the matrix has a non-finite entry",
        ));
    }
    let mut m = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let total: f64 = m.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        if off <= 1e-22 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes m[p][q]: tan 2θ = 2 a_pq / (a_qq − a_pp).
                let theta = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    Ok(((0..n).map(|i| m[i * n + i]).collect(), v))
}

/// The square root of a symmetric positive semi-definite matrix,
/// `V diag(√max(λ, 0)) Vᵀ` from [`sym_eigen`].
pub fn sym_sqrt(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let (lam, v) = sym_eigen(a, n)?;
    let s: Vec<f64> = lam.iter().map(|l| l.max(0.0).sqrt()).collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = (0..n).map(|k| v[i * n + k] * s[k] * v[j * n + k]).sum();
        }
    }
    Ok(out)
}

/// The Fréchet distance between `N(μ₁, Σ₁)` and `N(μ₂, Σ₂)` (see the module
/// doc): `‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}`.
pub fn frechet_distance_gaussians(
    mu1: &[f64],
    cov1: &[f64],
    mu2: &[f64],
    cov2: &[f64],
) -> Result<f64> {
    let n = mu1.len();
    for (what, len, want) in [
        ("mu2", mu2.len(), n),
        ("cov1", cov1.len(), n * n),
        ("cov2", cov2.len(), n * n),
    ] {
        if len != want {
            return Err(Error::LengthMismatch {
                what: format!("frechet_distance {what}"),
                expected: want,
                shape: format!("{n} features"),
                got: len,
            });
        }
    }
    let s1 = sym_sqrt(cov1, n)?;
    // M = Σ₁^{1/2} Σ₂ Σ₁^{1/2}, symmetrised against round-off.
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            t[i * n + j] = (0..n).map(|k| s1[i * n + k] * cov2[k * n + j]).sum();
        }
    }
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            m[i * n + j] = (0..n).map(|k| t[i * n + k] * s1[k * n + j]).sum();
        }
    }
    for i in 0..n {
        for j in 0..i {
            let avg = 0.5 * (m[i * n + j] + m[j * n + i]);
            m[i * n + j] = avg;
            m[j * n + i] = avg;
        }
    }
    let (lam, _) = sym_eigen(&m, n)?;
    let tr_sqrt: f64 = lam.iter().map(|l| l.max(0.0).sqrt()).sum();
    let d2: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let tr: f64 = (0..n).map(|i| cov1[i * n + i] + cov2[i * n + i]).sum();
    Ok(d2 + tr - 2.0 * tr_sqrt)
}

/// The Fréchet distance between the Gaussians fitted ([`mean_covariance`])
/// to two sets of rows of `dim` features.
pub fn frechet_distance(a: &[f64], b: &[f64], dim: usize) -> Result<f64> {
    let (m1, c1) = mean_covariance(a, dim)?;
    let (m2, c2) = mean_covariance(b, dim)?;
    frechet_distance_gaussians(&m1, &c1, &m2, &c2)
}

/// The number of rows of `cols` values in `v`, or an error naming `op`.
fn check_rows(op: &'static str, v: &[f64], cols: usize) -> Result<usize> {
    if cols == 0 || v.is_empty() || !v.len().is_multiple_of(cols) {
        return Err(Error::invalid(
            op,
            format!(
                "expected a non-empty whole number of rows of {cols} values, got {} values",
                v.len()
            ),
        ));
    }
    Ok(v.len() / cols)
}

#[cfg(test)]
#[path = "generative_tests.rs"]
mod tests;

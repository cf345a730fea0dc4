//! Exact t-SNE (van der Maaten & Hinton 2008) to two dimensions, O(n²) per
//! iteration: for a few thousand points (5,000 in `examples/embed2d.rs`).
//!
//! **Affinities.** For each point `i`, `p_{j|i} = exp(−β_i d²_ij) / Σ_{k≠i}
//! exp(−β_i d²_ik)` over the squared Euclidean distances, with `β_i` found by
//! binary search so that the entropy `H_i = −Σ_j p_{j|i} ln p_{j|i}` equals
//! `ln(perplexity)` (to 1e-5 nats, at most 200 halvings). The joint
//! affinities are `p_ij = (p_{j|i} + p_{i|j}) / 2n` (symmetric, summing to 1),
//! stored as an `n × n` matrix of `f32` (100 MB for n = 5,000).
//!
//! **Map.** With `w_ij = (1 + ‖y_i − y_j‖²)⁻¹`, `Z = Σ_{k≠l} w_kl` and
//! `q_ij = w_ij / Z`, the cost is `C = KL(P‖Q) = Σ p_ij ln(p_ij / q_ij)` and
//!
//! `∂C/∂y_i = 4 Σ_j (p_ij − q_ij) w_ij (y_i − y_j)`
//!
//! ([`tsne_gradient`]; one pass over the pairs gives `Z`,
//! `Σ_j p_ij w_ij (y_i − y_j)` and `Σ_j w²_ij (y_i − y_j)`, so `q` is never
//! stored). Early exaggeration multiplies `p` by `α` in the attractive term:
//! `4 Σ_j (α p_ij − q_ij) w_ij (y_i − y_j)`, the gradient of
//! `−α Σ p_ij ln w_ij + ln Z` (which is `C` up to a constant when `α = 1`).
//!
//! **Optimiser** (as the reference implementation and scikit-learn): gradient
//! descent with momentum 0.5 for the first 250 iterations and 0.8 after,
//! per-coordinate gains (`+0.2` when the gradient and the last update have
//! opposite signs, `×0.8` otherwise, at least 0.01), exaggeration `α = 12`
//! for the first 250 iterations, learning rate `max(n / α / 4, 50)`
//! (scikit-learn's `'auto'`), and the initial map the first two principal
//! components scaled to a standard deviation of 1e-4 along the first
//! (scikit-learn's `init='pca'`), so the run is deterministic.

use super::{pca_2d, rows};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// The settings of [`tsne`]; `Default` is the usual one.
#[derive(Clone, Debug)]
pub struct TsneConfig {
    /// The effective number of neighbours (`< n`); 30 by default.
    pub perplexity: f64,
    /// Gradient steps; 1000 by default.
    pub iterations: usize,
    /// The exaggeration `α` of the first iterations; 12 by default.
    pub early_exaggeration: f64,
    /// How many iterations are exaggerated (with momentum 0.5); 250.
    pub exaggeration_iterations: usize,
    /// The step size; `None` (default) is `max(n / α / 4, 50)`.
    pub learning_rate: Option<f64>,
    /// Compute the cost `KL(P‖Q)` every this many iterations (0: never); 50.
    pub report_every: usize,
}

impl Default for TsneConfig {
    fn default() -> Self {
        TsneConfig {
            perplexity: 30.0,
            iterations: 1000,
            early_exaggeration: 12.0,
            exaggeration_iterations: 250,
            learning_rate: None,
            report_every: 50,
        }
    }
}

/// A t-SNE map.
#[derive(Clone, Debug)]
pub struct Tsne {
    /// The map, one point per input row.
    pub points: Vec<[f64; 2]>,
    /// `KL(P‖Q)` of the final map.
    pub kl: f64,
    /// `(iteration, KL(P‖Q))` every `report_every` iterations.
    pub history: Vec<(usize, f64)>,
}

/// Squared distances from row `i` to every row (`d[i] = 0`).
fn sq_dists(x: &[f32], dim: usize, i: usize, d: &mut [f64]) {
    let xi = &x[i * dim..(i + 1) * dim];
    for (j, d) in d.iter_mut().enumerate() {
        *d = xi
            .iter()
            .zip(&x[j * dim..(j + 1) * dim])
            .map(|(&a, &b)| {
                let t = (a - b) as f64;
                t * t
            })
            .sum();
    }
}

/// One row's conditional affinities `p_{j|i}` at entropy `ln(perplexity)`,
/// written into `p` (with `p[i] = 0`); returns the entropy reached.
fn calibrate_row(d: &[f64], i: usize, perplexity: f64, p: &mut [f64]) -> f64 {
    let target = perplexity.ln();
    let dmin = d
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i)
        .map(|(_, &v)| v)
        .fold(f64::INFINITY, f64::min);
    let (mut beta, mut lo, mut hi) = (1.0f64, 0.0f64, f64::INFINITY);
    let mut h = 0.0;
    for _ in 0..200 {
        // p ∝ exp(−β (d − d_min)): the shift cancels and keeps one term at 1.
        let (mut sum, mut dot) = (0.0, 0.0);
        for (j, (&dj, pj)) in d.iter().zip(p.iter_mut()).enumerate() {
            let e = if j == i {
                0.0
            } else {
                (-beta * (dj - dmin)).exp()
            };
            *pj = e;
            sum += e;
            dot += (dj - dmin) * e;
        }
        // H = ln Σ e + β Σ (d − d_min) e / Σ e.
        h = sum.ln() + beta * dot / sum;
        p.iter_mut().for_each(|v| *v /= sum);
        if (h - target).abs() < 1e-5 {
            break;
        }
        if h > target {
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = (beta + lo) / 2.0;
        }
    }
    h
}

/// The joint affinities `p_ij = (p_{j|i} + p_{i|j}) / 2n` of the rows of `x`
/// (`n × dim`), each row's `p_{·|i}` calibrated to `perplexity` (see the
/// module doc); `n × n`, row-major, zero diagonal.
pub fn joint_probabilities(x: &[f32], dim: usize, perplexity: f64) -> Result<Vec<f32>> {
    let n = rows("tsne", x, dim, 3)?;
    if !(perplexity >= 1.0 && perplexity < (n - 1) as f64) {
        return Err(Error::invalid(
            "tsne",
            format!(
                "perplexity {perplexity} must be at least 1 and below n − 1 = {} (the number of neighbours of a point)",
                n - 1
            ),
        ));
    }
    let mut cond = vec![0.0f32; n * n];
    cond.par_chunks_mut(n).enumerate().for_each_init(
        || (vec![0.0f64; n], vec![0.0f64; n]),
        |(d, p), (i, row)| {
            sq_dists(x, dim, i, d);
            calibrate_row(d, i, perplexity, p);
            for (r, &v) in row.iter_mut().zip(p.iter()) {
                *r = v as f32;
            }
        },
    );
    let scale = 1.0 / (2.0 * n as f64);
    let mut joint = vec![0.0f32; n * n];
    joint.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (j, r) in row.iter_mut().enumerate() {
            *r = ((cond[i * n + j] as f64 + cond[j * n + i] as f64) * scale) as f32;
        }
    });
    Ok(joint)
}

/// The gradient of the (exaggerated) t-SNE cost at the map `y` for the joint
/// affinities `p` (`n × n`) into `grad`:
/// `∂/∂y_i = 4 Σ_j (α p_ij − q_ij) w_ij (y_i − y_j)` (see the module doc).
/// Returns `Z = Σ_{i≠j} w_ij`.
pub fn tsne_gradient(p: &[f32], y: &[[f64; 2]], alpha: f64, grad: &mut [[f64; 2]]) -> Result<f64> {
    let n = y.len();
    if p.len() != n * n || grad.len() != n {
        return Err(Error::invalid(
            "tsne_gradient",
            format!(
                "{} affinities and {} gradient rows for {n} points (expected {} and {n})",
                p.len(),
                grad.len(),
                n * n
            ),
        ));
    }
    // Per row: (Σ_j w_ij, Σ_j p_ij w_ij (y_i − y_j), Σ_j w²_ij (y_i − y_j)).
    let mut z = 0.0;
    let mut rep = vec![[0.0f64; 2]; n];
    let parts: Vec<(f64, [f64; 2], [f64; 2])> = (0..n)
        .into_par_iter()
        .map(|i| {
            let [yi0, yi1] = y[i];
            let prow = &p[i * n..(i + 1) * n];
            let (mut zi, mut a0, mut a1, mut r0, mut r1) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (j, (yj, &pij)) in y.iter().zip(prow).enumerate() {
                if j == i {
                    continue;
                }
                let (d0, d1) = (yi0 - yj[0], yi1 - yj[1]);
                let w = 1.0 / (1.0 + d0 * d0 + d1 * d1);
                zi += w;
                let pw = pij as f64 * w;
                a0 += pw * d0;
                a1 += pw * d1;
                let ww = w * w;
                r0 += ww * d0;
                r1 += ww * d1;
            }
            (zi, [a0, a1], [r0, r1])
        })
        .collect();
    for (i, (zi, a, r)) in parts.into_iter().enumerate() {
        z += zi;
        grad[i] = a;
        rep[i] = r;
    }
    for (g, r) in grad.iter_mut().zip(&rep) {
        g[0] = 4.0 * (alpha * g[0] - r[0] / z);
        g[1] = 4.0 * (alpha * g[1] - r[1] / z);
    }
    Ok(z)
}

/// `KL(P‖Q) = Σ_{i≠j} p_ij ln(p_ij / q_ij)` of the map `y` (terms with
/// `p_ij = 0` count 0); `p` is `n × n` for the `n` points of `y`.
pub fn kl_divergence(p: &[f32], y: &[[f64; 2]]) -> Result<f64> {
    let n = y.len();
    if p.len() != n * n {
        return Err(Error::invalid(
            "kl_divergence",
            format!("{} affinities for {n} points (expected {})", p.len(), n * n),
        ));
    }
    let w = |i: usize, j: usize| {
        let (d0, d1) = (y[i][0] - y[j][0], y[i][1] - y[j][1]);
        1.0 / (1.0 + d0 * d0 + d1 * d1)
    };
    let (z, s): (f64, f64) = (0..n)
        .into_par_iter()
        .map(|i| {
            let (mut z, mut s) = (0.0, 0.0);
            for j in (0..n).filter(|&j| j != i) {
                let wij = w(i, j);
                z += wij;
                let pij = p[i * n + j] as f64;
                if pij > 0.0 {
                    s += pij * (pij / wij).ln();
                }
            }
            (z, s)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    // Σ p ln(p/(w/Z)) = Σ p ln(p/w) + ln Z · Σ p.
    let total_p: f64 = p.iter().map(|&v| v as f64).sum();
    Ok(s + z.ln() * total_p)
}

/// The t-SNE map of the rows of `x` (`n × dim`), with the settings `cfg`.
pub fn tsne(x: &[f32], dim: usize, cfg: &TsneConfig) -> Result<Tsne> {
    let n = rows("tsne", x, dim, 3)?;
    let alpha = cfg.early_exaggeration;
    if !(alpha.is_finite() && alpha >= 1.0) {
        return Err(Error::invalid(
            "tsne",
            format!("early exaggeration {alpha} must be at least 1"),
        ));
    }
    let lr = cfg
        .learning_rate
        .unwrap_or_else(|| (n as f64 / alpha / 4.0).max(50.0));
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::invalid(
            "tsne",
            format!("learning rate {lr} must be positive"),
        ));
    }
    let p = joint_probabilities(x, dim, cfg.perplexity)?;
    let (mut y, _) = pca_2d(x, dim)?;
    let mean0 = y.iter().map(|v| v[0]).sum::<f64>() / n as f64;
    let sd0 = (y.iter().map(|v| (v[0] - mean0).powi(2)).sum::<f64>() / n as f64).sqrt();
    let s = if sd0 > 0.0 { 1e-4 / sd0 } else { 1.0 };
    y.iter_mut().for_each(|v| *v = [v[0] * s, v[1] * s]);
    let mut grad = vec![[0.0f64; 2]; n];
    let mut update = vec![[0.0f64; 2]; n];
    let mut gains = vec![[1.0f64; 2]; n];
    let mut history = Vec::new();
    for it in 0..cfg.iterations {
        let early = it < cfg.exaggeration_iterations;
        let (a, momentum) = if early { (alpha, 0.5) } else { (1.0, 0.8) };
        tsne_gradient(&p, &y, a, &mut grad)?;
        for ((yi, (gi, ui)), ki) in y
            .iter_mut()
            .zip(grad.iter().zip(&mut update))
            .zip(&mut gains)
        {
            for c in 0..2 {
                ki[c] = if gi[c] * ui[c] < 0.0 {
                    ki[c] + 0.2
                } else {
                    (ki[c] * 0.8).max(0.01)
                };
                ui[c] = momentum * ui[c] - lr * ki[c] * gi[c];
                yi[c] += ui[c];
            }
        }
        if cfg.report_every > 0 && ((it + 1) % cfg.report_every == 0) {
            history.push((it + 1, kl_divergence(&p, &y)?));
        }
    }
    if let Some(bad) = y
        .iter()
        .position(|v| !(v[0].is_finite() && v[1].is_finite()))
    {
        return Err(Error::NonFinite {
            what: format!("t-SNE map (point {bad}; lower the learning rate)"),
            value: y[bad][0],
        });
    }
    Ok(Tsne {
        kl: kl_divergence(&p, &y)?,
        points: y,
        history,
    })
}

#[cfg(test)]
#[path = "tsne_tests.rs"]
mod tests;

//! Tests of `manifold/tsne.rs`: the perplexity calibration, affinities by hand,
//! the gradient against central differences, and a map that separates two
//! clusters.

use super::*;
use crate::testing::{numeric_grad, rel_err};
use rand::Rng as _;

fn random_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut r = crate::rng(seed);
    (0..n * dim).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

#[test]
fn calibration_reaches_the_perplexity() {
    let (n, dim) = (40, 4);
    let x = random_rows(n, dim, 1);
    let mut d = vec![0.0; n];
    let mut p = vec![0.0; n];
    for perp in [2.0, 5.0, 20.0] {
        for i in [0, 17, 39] {
            sq_dists(&x, dim, i, &mut d);
            let h = calibrate_row(&d, i, perp, &mut p);
            // The entropy of the row, computed here from p itself.
            let h2: f64 = -p
                .iter()
                .filter(|&&v| v > 0.0)
                .map(|&v| v * v.ln())
                .sum::<f64>();
            assert!((h - perp.ln()).abs() < 1e-5, "{perp} {i}: {h}");
            assert!((h2 - perp.ln()).abs() < 1e-5, "{perp} {i}: {h2}");
            assert_eq!(p[i], 0.0);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
}

#[test]
fn joint_affinities_by_hand() {
    // Three equidistant points: every p_{j|i} = 1/2 whatever β, so
    // p_ij = (1/2 + 1/2)/(2·3) = 1/6 off the diagonal.
    let x = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    let p = joint_probabilities(&x, 3, 1.5).unwrap();
    for i in 0..3 {
        for j in 0..3 {
            let want = if i == j { 0.0 } else { 1.0 / 6.0 };
            assert!(
                (p[i * 3 + j] as f64 - want).abs() < 1e-7,
                "{i} {j}: {}",
                p[i * 3 + j]
            );
        }
    }
    // On random data: symmetric, summing to 1.
    let x = random_rows(30, 3, 2);
    let p = joint_probabilities(&x, 3, 5.0).unwrap();
    let total: f64 = p.iter().map(|&v| v as f64).sum();
    assert!((total - 1.0).abs() < 1e-5, "{total}");
    for i in 0..30 {
        for j in 0..30 {
            assert_eq!(p[i * 30 + j], p[j * 30 + i]);
        }
    }
}

#[test]
fn gradient_matches_central_differences() {
    let n = 7;
    let x = random_rows(n, 3, 3);
    let p = joint_probabilities(&x, 3, 3.0).unwrap();
    let mut r = crate::rng(4);
    let y: Vec<f64> = (0..2 * n).map(|_| r.random_range(-2.0..2.0)).collect();
    let pts = |v: &[f64]| -> Vec<[f64; 2]> { v.chunks(2).map(|c| [c[0], c[1]]).collect() };
    let mut g = vec![[0.0; 2]; n];
    // α = 1: the gradient of KL(P‖Q).
    tsne_gradient(&p, &pts(&y), 1.0, &mut g).unwrap();
    let flat: Vec<f64> = g.iter().flatten().copied().collect();
    let num = numeric_grad(&y, |v| kl_divergence(&p, &pts(v)).unwrap());
    let err = rel_err(&flat, &num);
    assert!(err < 1e-7, "{err}");
    // α = 3: the gradient of −α Σ p ln w + ln Z.
    let exaggerated = |v: &[f64]| {
        let q = pts(v);
        let (mut z, mut s) = (0.0, 0.0);
        for i in 0..n {
            for j in (0..n).filter(|&j| j != i) {
                let (d0, d1) = (q[i][0] - q[j][0], q[i][1] - q[j][1]);
                let w = 1.0 / (1.0 + d0 * d0 + d1 * d1);
                z += w;
                s += p[i * n + j] as f64 * w.ln();
            }
        }
        -3.0 * s + z.ln()
    };
    tsne_gradient(&p, &pts(&y), 3.0, &mut g).unwrap();
    let flat: Vec<f64> = g.iter().flatten().copied().collect();
    let err = rel_err(&flat, &numeric_grad(&y, exaggerated));
    assert!(err < 1e-7, "{err}");
}

#[test]
fn two_clusters_come_apart_and_the_cost_falls() {
    // 30 points around each of two centres 6 apart in 5-D.
    let (n, dim) = (60, 5);
    let mut x = random_rows(n, dim, 5);
    for (i, row) in x.chunks_mut(dim).enumerate() {
        row[0] += if i < 30 { -3.0 } else { 3.0 };
    }
    let labels: Vec<usize> = (0..n).map(|i| usize::from(i >= 30)).collect();
    let cfg = TsneConfig {
        perplexity: 10.0,
        iterations: 400,
        report_every: 100,
        ..TsneConfig::default()
    };
    let m = tsne(&x, dim, &cfg).unwrap();
    let flat: Vec<f64> = m.points.iter().flatten().copied().collect();
    assert_eq!(
        crate::manifold::knn_accuracy(&flat, 2, &labels, 5).unwrap(),
        1.0
    );
    assert_eq!(m.history.len(), 4);
    // After the exaggeration ends (iteration 250), the cost keeps falling.
    assert!(m.history[3].1 <= m.history[2].1, "{:?}", m.history);
    assert!(m.kl < 1.0, "{}", m.kl);
    // Deterministic: the same map again.
    assert_eq!(tsne(&x, dim, &cfg).unwrap().points, m.points);
}

#[test]
fn mistakes_are_named() {
    let x = random_rows(5, 2, 6);
    let e = joint_probabilities(&x, 2, 4.0).unwrap_err().to_string();
    assert!(
        e.contains("perplexity 4 must be at least 1 and below n − 1 = 4"),
        "{e}"
    );
    let cfg = TsneConfig {
        early_exaggeration: 0.5,
        ..TsneConfig::default()
    };
    let e = tsne(&x, 2, &cfg).unwrap_err().to_string();
    assert!(e.contains("early exaggeration"), "{e}");
    let e = tsne_gradient(&[0.0; 4], &[[0.0; 2]; 3], 1.0, &mut [[0.0; 2]; 3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("4 affinities"), "{e}");
    let e = kl_divergence(&[0.0; 4], &[[0.0; 2]; 3])
        .unwrap_err()
        .to_string();
    assert!(e.contains("4 affinities for 3 points (expected 9)"), "{e}");
}

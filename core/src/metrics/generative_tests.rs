use super::*;
use rand::Rng as _;

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
}

#[test]
fn mean_max_probability_by_hand() {
    let p = [0.7, 0.2, 0.1, 0.3, 0.3, 0.4];
    close(
        mean_max_probability(&p, 3).unwrap(),
        0.55,
        1e-15,
        "(0.7 + 0.4)/2",
    );
    assert!(mean_max_probability(&p, 4).is_err());
    assert!(mean_max_probability(&[], 3).is_err());
}

#[test]
fn class_entropy_by_hand() {
    let uniform: Vec<u32> = (0..1000).map(|i| i % 10).collect();
    close(
        class_entropy(&uniform, 10).unwrap(),
        10f64.ln(),
        1e-12,
        "uniform",
    );
    close(class_entropy(&[3; 7], 10).unwrap(), 0.0, 0.0, "collapsed");
    // h = (1/2, 1/4, 1/4): ½ ln 2 + 2 · ¼ ln 4 = 1.5 ln 2.
    close(
        class_entropy(&[0, 0, 1, 2], 3).unwrap(),
        1.5 * 2f64.ln(),
        1e-15,
        "(½, ¼, ¼)",
    );
    let e = class_entropy(&[0, 10], 10).unwrap_err().to_string();
    assert!(e.contains("predicted class 10"), "{e}");
    assert!(class_entropy(&[], 10).is_err());
}

#[test]
fn mean_covariance_by_hand() {
    // Rows (1, 2), (3, 6), (5, 4): mean (3, 4); deviations (−2, −2), (0, 2),
    // (2, 0); cov = [[8, 4], [4, 8]] / 2.
    let (m, c) = mean_covariance(&[1.0, 2.0, 3.0, 6.0, 5.0, 4.0], 2).unwrap();
    assert_eq!(m, vec![3.0, 4.0]);
    assert_eq!(c, vec![4.0, 2.0, 2.0, 4.0]);
    assert!(mean_covariance(&[1.0, 2.0], 2).is_err());
}

#[test]
fn jacobi_eigen_of_a_2x2_by_hand() {
    // [[2, 1], [1, 2]]: eigenvalues 1 (vector (1, −1)/√2) and 3 ((1, 1)/√2).
    let (mut lam, v) = sym_eigen(&[2.0, 1.0, 1.0, 2.0], 2).unwrap();
    let order: Vec<usize> = if lam[0] < lam[1] {
        vec![0, 1]
    } else {
        vec![1, 0]
    };
    let (v1, v3) = (
        [v[order[0]], v[2 + order[0]]],
        [v[order[1]], v[2 + order[1]]],
    );
    lam.sort_by(f64::total_cmp);
    close(lam[0], 1.0, 1e-14, "λ₁");
    close(lam[1], 3.0, 1e-14, "λ₂");
    close(v1[0] * v1[1], -0.5, 1e-14, "v₁ ∝ (1, −1)");
    close(v3[0] * v3[1], 0.5, 1e-14, "v₃ ∝ (1, 1)");
    assert!(
        sym_eigen(&[2.0, 1.0, 0.0, 2.0], 2).is_err(),
        "not symmetric"
    );
    assert!(sym_eigen(&[2.0, 1.0, 1.0], 2).is_err(), "wrong length");
}

#[test]
fn jacobi_eigen_reconstructs_a_random_symmetric_matrix() {
    let n = 7;
    let mut g = crate::rng(11);
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let x: f64 = g.random::<f64>() * 2.0 - 1.0;
            a[i * n + j] = x;
            a[j * n + i] = x;
        }
    }
    let (lam, v) = sym_eigen(&a, n).unwrap();
    for i in 0..n {
        for j in 0..n {
            let rec: f64 = (0..n).map(|k| v[i * n + k] * lam[k] * v[j * n + k]).sum();
            close(rec, a[i * n + j], 1e-12, "V Λ Vᵀ");
            let vtv: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
            close(vtv, f64::from(i == j), 1e-12, "Vᵀ V");
        }
    }
    // The trace is the sum of the eigenvalues.
    let tr: f64 = (0..n).map(|i| a[i * n + i]).sum();
    close(lam.iter().sum(), tr, 1e-12, "trace");
}

#[test]
fn square_root_squares_back() {
    // B Bᵀ + I is positive definite.
    let n = 5;
    let mut g = crate::rng(3);
    let b: Vec<f64> = (0..n * n).map(|_| g.random::<f64>() - 0.5).collect();
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] =
                (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>() + f64::from(i == j);
        }
    }
    let s = sym_sqrt(&a, n).unwrap();
    for i in 0..n {
        for j in 0..n {
            let sq: f64 = (0..n).map(|k| s[i * n + k] * s[k * n + j]).sum();
            close(sq, a[i * n + j], 1e-12, "√A √A");
        }
    }
}

#[test]
fn frechet_distance_by_hand() {
    // One dimension: (μ₁ − μ₂)² + (σ₁ − σ₂)².
    close(
        frechet_distance_gaussians(&[1.0], &[4.0], &[-1.0], &[9.0]).unwrap(),
        4.0 + 1.0,
        1e-12,
        "1-D",
    );
    // Σ₁ = [[2, 1], [1, 2]], Σ₂ = diag(1, 4), which do not commute: for a 2×2
    // Σ₁Σ₂ with eigenvalues λ₁, λ₂, Tr √(Σ₁Σ₂) = √λ₁ + √λ₂ =
    // √(tr Σ₁Σ₂ + 2 √det Σ₁Σ₂) = √(10 + 2√12). ‖μ₁ − μ₂‖² = 1 + 4.
    let want = 5.0 + (4.0 + 5.0) - 2.0 * (10.0 + 2.0 * 12f64.sqrt()).sqrt();
    close(
        frechet_distance_gaussians(
            &[0.0, 0.0],
            &[2.0, 1.0, 1.0, 2.0],
            &[1.0, 2.0],
            &[1.0, 0.0, 0.0, 4.0],
        )
        .unwrap(),
        want,
        1e-12,
        "2-D, non-commuting",
    );
    let e = frechet_distance_gaussians(&[0.0, 0.0], &[1.0; 4], &[0.0], &[1.0; 4])
        .unwrap_err()
        .to_string();
    assert!(e.contains("mu2"), "{e}");
}

#[test]
fn frechet_distance_of_samples() {
    // Two samples of the same Gaussian are close; shifting one by 3 in
    // every one of 4 dimensions adds about 4 · 9.
    let (n, dim) = (4000, 4);
    let mut g = crate::rng(5);
    let mut draw = |shift: f64| -> Vec<f64> {
        (0..n * dim)
            .map(|i| {
                let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut g);
                z * (1.0 + (i % dim) as f64) + shift
            })
            .collect()
    };
    let (a, b, c) = (draw(0.0), draw(0.0), draw(3.0));
    let same = frechet_distance(&a, &b, dim).unwrap();
    let shifted = frechet_distance(&a, &c, dim).unwrap();
    assert!((0.0..0.2).contains(&same), "same distribution: {same}");
    assert!((shifted - 36.0).abs() < 1.5, "shifted: {shifted}");
    close(frechet_distance(&a, &a, dim).unwrap(), 0.0, 1e-9, "itself");
}

//! The skip-gram negative-sampling loss of one (centre, context) pair and
//! its gradient, written by hand.
//!
//! With `v = v_c` the centre word's input vector, `u_0 = u_o` the context
//! word's output vector and `u_1 … u_K` the output vectors of `K` noise
//! words, `s_j = u_j · v` and `σ(x) = 1 / (1 + e^{−x})`:
//!
//! ```text
//! L = −log σ(s_0) − Σ_{k=1..K} m_k log σ(−s_k)
//! g_j = ∂L/∂s_j = σ(s_0) − 1  (j = 0),   m_j σ(s_j)  (j ≥ 1)
//! ∂L/∂v   = Σ_j g_j u_j
//! ∂L/∂u_j = g_j v
//! ```
//!
//! `m_k ∈ {0, 1}` masks a noise word that happens to be the context word
//! itself: word2vec and gensim skip such a draw, and a mask of 0 does the
//! same at a fixed shape. `log σ(x) = −log(1 + e^{−x})` is computed as
//! `−ln_1p(e^{−|x|}) + min(x, 0)`, which neither overflows nor loses the
//! small values.

use crate::elem::Elem;

/// `log σ(x)`, stably.
pub fn log_sigmoid<E: Elem>(x: E) -> E {
    -(-x.abs()).exp().ln_1p() + x.min(E::zero())
}

/// `σ(x)`, stably.
pub fn sigmoid<E: Elem>(x: E) -> E {
    if x >= E::zero() {
        E::one() / (E::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (E::one() + e)
    }
}

/// The loss of one pair (module doc). `v` is the centre vector (`dim`
/// values), `u` the `K + 1` output rows (`(K + 1)·dim`, the context word's
/// first), `mask` the `K + 1` weights (`mask[0]` is ignored: the positive
/// term always counts). Writes `∂L/∂v` into `dv` and `∂L/∂u` into `du`
/// (overwriting both) and returns `L`.
pub fn loss_and_grad<E: Elem>(v: &[E], u: &[E], mask: &[E], dv: &mut [E], du: &mut [E]) -> E {
    let dim = v.len();
    dv.fill(E::zero());
    let mut loss = E::zero();
    for (j, ((uj, duj), &m)) in u
        .chunks_exact(dim)
        .zip(du.chunks_exact_mut(dim))
        .zip(mask)
        .enumerate()
    {
        let s = uj.iter().zip(v).fold(E::zero(), |a, (&x, &y)| a + x * y);
        let g = if j == 0 {
            loss = loss - log_sigmoid(s);
            sigmoid(s) - E::one()
        } else {
            loss = loss - m * log_sigmoid(-s);
            m * sigmoid(s)
        };
        for (((d, &x), dvj), &w) in duj.iter_mut().zip(v).zip(dv.iter_mut()).zip(uj) {
            *d = g * x;
            *dvj = *dvj + g * w;
        }
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use rand::Rng as _;

    #[test]
    fn gradient_matches_central_differences_in_f64() {
        let (dim, k) = (7, 4);
        let mut r = rng(11);
        let v: Vec<f64> = (0..dim).map(|_| r.random_range(-0.8..0.8)).collect();
        let u: Vec<f64> = (0..(k + 1) * dim)
            .map(|_| r.random_range(-0.8..0.8))
            .collect();
        let mask = [1.0, 1.0, 0.0, 1.0, 1.0]; // noise word 2 masked out
        let (mut dv, mut du) = (vec![9.0; dim], vec![9.0; (k + 1) * dim]);
        let l = loss_and_grad(&v, &u, &mask, &mut dv, &mut du);
        let f = |v: &[f64], u: &[f64]| {
            let (mut a, mut b) = (vec![0.0; dim], vec![0.0; (k + 1) * dim]);
            loss_and_grad(v, u, &mask, &mut a, &mut b)
        };
        // the loss itself, written out
        let dot = |j: usize| (0..dim).map(|d| u[j * dim + d] * v[d]).sum::<f64>();
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let want = -sig(dot(0)).ln() - [1, 3, 4].iter().map(|&j| sig(-dot(j)).ln()).sum::<f64>();
        assert!((l - want).abs() < 1e-12, "{l} vs {want}");
        let h = 1e-6;
        let close = |a: f64, n: f64| (a - n).abs() <= 1e-8 * (1.0 + n.abs());
        for i in 0..dim {
            let (mut p, mut m) = (v.clone(), v.clone());
            p[i] += h;
            m[i] -= h;
            let n = (f(&p, &u) - f(&m, &u)) / (2.0 * h);
            assert!(close(dv[i], n), "dv[{i}] = {} vs {n}", dv[i]);
        }
        for i in 0..(k + 1) * dim {
            let (mut p, mut m) = (u.clone(), u.clone());
            p[i] += h;
            m[i] -= h;
            let n = (f(&v, &p) - f(&v, &m)) / (2.0 * h);
            assert!(close(du[i], n), "du[{i}] = {} vs {n}", du[i]);
            if i / dim == 2 {
                assert_eq!(du[i], 0.0, "a masked noise word gets no gradient");
            }
        }
    }

    #[test]
    fn log_sigmoid_is_stable_at_the_extremes() {
        assert_eq!(log_sigmoid(0.0f64), -(2.0f64).ln());
        assert!((log_sigmoid(-800.0f64) + 800.0).abs() < 1e-9);
        assert!(log_sigmoid(800.0f64).abs() < 1e-300);
        assert!((log_sigmoid(40.0f64) + (-40.0f64).exp()).abs() < 1e-30);
        assert_eq!(sigmoid(-800.0f64), 0.0);
        assert_eq!(sigmoid(800.0f64), 1.0);
        // the zero-vector start: each term is log 2
        let (mut dv, mut du) = (vec![0.0; 3], vec![0.0; 9]);
        let l = loss_and_grad(&[0.1f64, 0.2, 0.3], &[0.0; 9], &[1.0; 3], &mut dv, &mut du);
        assert!((l - 3.0 * (2.0f64).ln()).abs() < 1e-15);
    }
}

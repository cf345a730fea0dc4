//! The losses of value- and policy-based agents, with hand-written gradients,
//! on host slices of any [`Elem`] (`f32` or `f64`), row-major `[B, A]`
//! (`B` samples, `A` actions). Both are scalars of a few values per sample,
//! cheap on the CPU whichever device computed the network's outputs.
//!
//! **Huber TD loss** ([`huber_td_loss`]; DQN's loss, PyTorch's
//! `smooth_l1_loss(q.gather(1, a), y)` with `β = 1`): only the taken
//! action's value enters, against a target `y_b` held constant
//! (semi-gradient), with `d_b = Q[b, a_b] − y_b`,
//!
//! ```text
//! L = (1/B)·Σ_b h(d_b),   h(d) = d²/2 if |d| ≤ 1, |d| − 1/2 otherwise
//! ∂L/∂Q[b, j] = clamp(d_b, −1, 1)/B if j = a_b, 0 otherwise.
//! ```
//!
//! **Weighted negative log-softmax** ([`weighted_nll_loss`]; REINFORCE and
//! actor–critic with `w_b` a return or an advantage, held constant): with
//! `p_b = softmax(z_b)` of the logits `z_b`,
//!
//! ```text
//! L = −(1/B)·Σ_b w_b·log p_b[a_b],   log p_b[a] = z_b[a] − log Σ_j exp z_b[j]
//! ∂L/∂z[b, j] = (w_b/B)·(p_b[j] − [j = a_b]).
//! ```
//!
//! Both check their gradients against central differences in f64
//! (`cargo test -p kiln-core --lib rl::losses`).

use crate::elem::Elem;
use crate::{Error, Result};

/// Checks the shapes shared by both losses; returns `A`.
fn check(
    op: &'static str,
    values: usize,
    actions: &[usize],
    per_sample: usize,
    grad: usize,
) -> Result<usize> {
    let b = actions.len();
    if b == 0 {
        return Err(Error::EmptyBatch { op });
    }
    if per_sample != b {
        return Err(Error::BatchMismatch {
            op,
            left_name: "actions",
            left: b,
            right_name: "targets or weights",
            right: per_sample,
        });
    }
    if values == 0 || !values.is_multiple_of(b) {
        return Err(Error::LengthMismatch {
            what: format!("{op}: values for {b} samples"),
            expected: b * values.div_ceil(b).max(1),
            shape: "[B, A], A ≥ 1".into(),
            got: values,
        });
    }
    if grad != values {
        return Err(Error::LengthMismatch {
            what: format!("{op}: gradient"),
            expected: values,
            shape: "[B, A]".into(),
            got: grad,
        });
    }
    let a = values / b;
    if let Some((index, &label)) = actions.iter().enumerate().find(|(_, &x)| x >= a) {
        return Err(Error::LabelOutOfRange {
            index,
            label,
            classes: a,
        });
    }
    Ok(a)
}

fn finite<E: Elem>(op: &'static str, loss: E) -> Result<E> {
    if loss.is_finite() {
        Ok(loss)
    } else {
        Err(Error::NonFinite {
            what: op.into(),
            value: loss.f64(),
        })
    }
}

/// The Huber (smooth L1, `δ = 1`) TD loss of action values `q` (`[B, A]`,
/// row-major) at the taken `actions` (`[B]`) against `targets` (`[B]`): the
/// mean of `h(Q[b, a_b] − y_b)` (see the [module docs](self)). Writes
/// `∂L/∂Q` into `grad_q` (`[B, A]`, overwritten: zero except at the taken
/// actions) and returns the loss.
///
/// Errors: an empty batch, lengths that disagree, an action `≥ A`, and a
/// loss that is not finite.
pub fn huber_td_loss<E: Elem>(
    q: &[E],
    actions: &[usize],
    targets: &[E],
    grad_q: &mut [E],
) -> Result<E> {
    const OP: &str = "huber_td_loss";
    let a = check(OP, q.len(), actions, targets.len(), grad_q.len())?;
    let inv_b = E::one() / E::of(actions.len() as f64);
    let half = E::of(0.5);
    grad_q.fill(E::zero());
    let mut total = E::zero();
    for (b, (&act, &y)) in actions.iter().zip(targets).enumerate() {
        let d = q[b * a + act] - y;
        let (loss, slope) = if d.abs() <= E::one() {
            (half * d * d, d)
        } else {
            (d.abs() - half, d.signum())
        };
        total = total + loss;
        grad_q[b * a + act] = slope * inv_b;
    }
    finite(OP, total * inv_b)
}

/// The weighted negative log-softmax loss of `logits` (`[B, A]`, row-major)
/// at the taken `actions` (`[B]`) with `weights` (`[B]`):
/// `−(1/B)·Σ_b w_b·log softmax(z_b)[a_b]` (see the [module docs](self)).
/// Writes `∂L/∂z` into `grad_logits` (`[B, A]`, overwritten) and returns
/// the loss. The log-softmax subtracts each row's maximum first, so large
/// logits do not overflow.
///
/// Errors: an empty batch, lengths that disagree, an action `≥ A`, and a
/// loss that is not finite.
pub fn weighted_nll_loss<E: Elem>(
    logits: &[E],
    actions: &[usize],
    weights: &[E],
    grad_logits: &mut [E],
) -> Result<E> {
    const OP: &str = "weighted_nll_loss";
    let a = check(OP, logits.len(), actions, weights.len(), grad_logits.len())?;
    let inv_b = E::one() / E::of(actions.len() as f64);
    let mut total = E::zero();
    for (b, (&act, &w)) in actions.iter().zip(weights).enumerate() {
        let z = &logits[b * a..(b + 1) * a];
        let g = &mut grad_logits[b * a..(b + 1) * a];
        let max = z.iter().copied().fold(E::neg_infinity(), E::max);
        let mut sum = E::zero();
        for (gj, &zj) in g.iter_mut().zip(z) {
            *gj = (zj - max).exp();
            sum = sum + *gj;
        }
        let log_p = z[act] - max - sum.ln();
        total = total - w * log_p;
        let scale = w * inv_b;
        for gj in g.iter_mut() {
            *gj = *gj / sum * scale;
        }
        g[act] = g[act] - scale;
    }
    finite(OP, total * inv_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of `f` at `x`, step 1e-6, in f64.
    fn numeric(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
        let h = 1e-6;
        (0..x.len())
            .map(|i| {
                let (mut up, mut down) = (x.to_vec(), x.to_vec());
                up[i] += h;
                down[i] -= h;
                (f(&up) - f(&down)) / (2.0 * h)
            })
            .collect()
    }

    #[test]
    fn huber_values_and_gradient() {
        // B = 3, A = 3: errors 0.5 (quadratic), −2.5 and 1.75 (linear).
        let q: [f64; 9] = [0.3, 1.5, -0.2, 2.0, -1.0, 0.4, 0.1, 0.2, 2.75];
        let (actions, targets) = ([1, 0, 2], [1.0f64, 4.5, 1.0]);
        let mut grad = [0.0; 9];
        let loss = huber_td_loss(&q, &actions, &targets, &mut grad).unwrap();
        let want = (0.125 + 2.0 + 1.25) / 3.0;
        assert!((loss - want).abs() < 1e-15, "{loss} vs {want}");
        let fd = numeric(
            |q| huber_td_loss(q, &actions, &targets, &mut [0.0; 9]).unwrap(),
            &q,
        );
        for i in 0..9 {
            assert!(
                (grad[i] - fd[i]).abs() < 1e-8,
                "{i}: {} vs {}",
                grad[i],
                fd[i]
            );
            let taken = actions[i / 3] == i % 3;
            assert_eq!(grad[i] != 0.0, taken, "{i}");
        }
        assert_eq!(grad[1], 0.5 / 3.0);
        assert_eq!(grad[3], -1.0 / 3.0);
        assert_eq!(grad[8], 1.0 / 3.0);
    }

    #[test]
    fn weighted_nll_values_and_gradient() {
        let logits: [f64; 8] = [0.5, -1.0, 2.0, 0.0, 3.0, 1.0, -2.0, 0.7];
        let (actions, weights) = ([2, 1], [1.5f64, -0.75]);
        let mut grad = [0.0; 8];
        let loss = weighted_nll_loss(&logits, &actions, &weights, &mut grad).unwrap();
        let lse = |z: &[f64]| z.iter().map(|v| v.exp()).sum::<f64>().ln();
        let want = -(1.5 * (2.0 - lse(&logits[..4])) - 0.75 * (1.0 - lse(&logits[4..]))) / 2.0;
        assert!((loss - want).abs() < 1e-14, "{loss} vs {want}");
        let fd = numeric(
            |z| weighted_nll_loss(z, &actions, &weights, &mut [0.0; 8]).unwrap(),
            &logits,
        );
        for i in 0..8 {
            assert!(
                (grad[i] - fd[i]).abs() < 1e-8,
                "{i}: {} vs {}",
                grad[i],
                fd[i]
            );
        }
        // Each row's gradient sums to 0 (softmax's constraint).
        assert!(grad[..4].iter().sum::<f64>().abs() < 1e-15);
        // Large logits do not overflow; f32 works too.
        let mut g32 = [0.0f32; 2];
        let l = weighted_nll_loss(&[1000.0f32, 0.0], &[0], &[1.0], &mut g32).unwrap();
        assert!(l.abs() < 1e-6 && g32[0].abs() < 1e-6);
    }

    #[test]
    fn misuse_is_an_error() {
        let mut g = [0.0; 4];
        assert!(huber_td_loss(&[0.0; 4], &[], &[], &mut g).is_err());
        assert!(huber_td_loss(&[0.0; 4], &[0, 2], &[0.0, 0.0], &mut g).is_err());
        assert!(huber_td_loss(&[0.0; 4], &[0, 1], &[0.0], &mut g).is_err());
        assert!(huber_td_loss(&[0.0; 3], &[0, 1], &[0.0, 0.0], &mut g[..3]).is_err());
        assert!(weighted_nll_loss(&[0.0; 4], &[0, 1], &[1.0, 1.0], &mut g[..2]).is_err());
        assert!(huber_td_loss(&[f64::NAN, 0.0], &[0], &[0.0], &mut g[..2]).is_err());
    }
}

//! Losses between distributions: cross-entropy with soft labels and label
//! smoothing, focal loss, KL divergence. Re-exported from [`crate::loss`].
//!
//! With `p = softmax(x)` over the `C` logits of a sample and `N` samples:
//!
//! | function | per-sample loss | `∂/∂x` (before `1/N`) | PyTorch |
//! |---|---|---|---|
//! | [`soft_cross_entropy`] | `−Σ_k q_k log p_k`, `q = (1−ε)t + ε/C` | `p·Σ_k q_k − q` | `F.cross_entropy(x, t, label_smoothing=ε)` with probability targets |
//! | [`cross_entropy_smoothed`] | the same with `t = onehot(y)` | `p − q` | `F.cross_entropy(x, y, label_smoothing=ε)` |
//! | [`focal_loss`] | `−α_y (1−p_y)^γ log p_y` | `k·(p − onehot(y))`, see below | none (Lin et al. 2017) |
//! | [`kl_div`] | `Σ_k t_k (log t_k − x_k)` | `−t` | `F.kl_div(x, t, reduction='batchmean')` |
//!
//! All are averaged over the `N` samples (PyTorch's `reduction='mean'`, and
//! `'batchmean'` for KL).
//!
//! **Soft labels** (CutMix, mixup, distillation) are rows of probabilities;
//! PyTorch does not require them to sum to 1 and neither does kiln (hence the
//! `Σ_k q_k` in the gradient). Label smoothing `ε` mixes them with the
//! uniform distribution first, as PyTorch does for both kinds of target.
//!
//! **Focal loss** down-weights well-classified samples by `(1 − p_y)^γ`; the
//! course writes `FL(p_t) = −(1 − p_t)^γ log p_t`, kiln adds the optional
//! per-class weight `α_y` of the paper's α-balanced form (for `C = 2`, the
//! paper's scalar α is `alpha = [1 − α, α]`). With `γ = 0` and no `α` it is
//! cross-entropy. Writing `p_y = p_t`, `ℓ = log p_t`, `u = 1 − p_t`:
//! `∂FL/∂x_j = k·(δ_jy − p_j)` with `k = α_y (γ u^{γ−1} p_t ℓ − u^γ)`;
//! `u` is computed as `−expm1(ℓ)` so that confident samples keep their
//! precision, and the `γ u^{γ−1}` term is taken as 0 when `u = 0` (its limit).
//!
//! **KL divergence** follows PyTorch's argument order and convention: the
//! *input* `x` holds log-probabilities (e.g. `log_softmax` of the student),
//! the *target* `t` probabilities, and the loss is `KL(t ‖ e^x)` summed over
//! all elements and divided by the batch size (`'batchmean'`, the
//! mathematically correct KL; PyTorch's default `'mean'` divides by the
//! element count instead). `t log t` is 0 where `t = 0`. With `log_target`
//! the target is given as log-probabilities and the loss is
//! `Σ e^t (t − x)`, gradient `−e^t`. Only the input's gradient is computed.

use crate::device::LossTarget;
use crate::elem::Elem;
use crate::error::{check_batch, Error, Result};
use crate::kernels::LossKernels;
use crate::shape::{Shape, S1};
use crate::tensor::{Labels, Tensor};

use super::finish;

fn grad_buf<S: Shape, E: Elem, D: LossKernels<E>>(
    grad: Option<&mut Tensor<S, E, D>>,
    batch: usize,
) -> Result<Option<&mut D::Buf<E>>> {
    match grad {
        Some(g) => {
            g.set_batch(batch)?;
            Ok(Some(&mut g.buf))
        }
        None => Ok(None),
    }
}

fn check_smoothing(op: &'static str, eps: f64) -> Result<()> {
    if (0.0..=1.0).contains(&eps) {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("label_smoothing must lie in [0, 1], got {eps}"),
        ))
    }
}

/// Cross-entropy of `C` logits per sample against probability targets, with
/// label smoothing `label_smoothing` (0 for none).
pub fn soft_cross_entropy<const C: usize, E: Elem, D: LossKernels<E>>(
    logits: &Tensor<S1<C>, E, D>,
    target: &Tensor<S1<C>, E, D>,
    label_smoothing: f64,
    grad: Option<&mut Tensor<S1<C>, E, D>>,
) -> Result<E> {
    const OP: &str = "soft_cross_entropy";
    check_batch(OP, "logits", logits.batch(), "target", target.batch())?;
    check_smoothing(OP, label_smoothing)?;
    let n = logits.batch();
    if n == 0 {
        return Err(Error::EmptyBatch { op: OP });
    }
    let dx = grad_buf(grad, n)?;
    let v = logits.device().soft_cross_entropy(
        &logits.buf,
        LossTarget::Dense(&target.buf),
        label_smoothing,
        dx,
        n,
        C,
    )?;
    finish(OP, v)
}

/// Cross-entropy against class labels with label smoothing `label_smoothing`.
pub fn cross_entropy_smoothed<const C: usize, E: Elem, D: LossKernels<E>>(
    logits: &Tensor<S1<C>, E, D>,
    labels: &Labels<C, D>,
    label_smoothing: f64,
    grad: Option<&mut Tensor<S1<C>, E, D>>,
) -> Result<E> {
    const OP: &str = "cross_entropy_smoothed";
    check_batch(OP, "logits", logits.batch(), "labels", labels.len())?;
    check_smoothing(OP, label_smoothing)?;
    let n = logits.batch();
    if n == 0 {
        return Err(Error::EmptyBatch { op: OP });
    }
    let dx = grad_buf(grad, n)?;
    let v = logits.device().soft_cross_entropy(
        &logits.buf,
        LossTarget::Classes(&labels.buf),
        label_smoothing,
        dx,
        n,
        C,
    )?;
    finish(OP, v)
}

/// Multiclass focal loss with focusing parameter `gamma ≥ 0` and optional
/// per-class weights `alpha` (one row of `C` values).
pub fn focal_loss<const C: usize, E: Elem, D: LossKernels<E>>(
    logits: &Tensor<S1<C>, E, D>,
    labels: &Labels<C, D>,
    gamma: f64,
    alpha: Option<&Tensor<S1<C>, E, D>>,
    grad: Option<&mut Tensor<S1<C>, E, D>>,
) -> Result<E> {
    const OP: &str = "focal_loss";
    check_batch(OP, "logits", logits.batch(), "labels", labels.len())?;
    if !(gamma >= 0.0 && gamma.is_finite()) {
        return Err(Error::invalid(
            OP,
            format!("gamma must be finite and ≥ 0, got {gamma}"),
        ));
    }
    if let Some(a) = alpha {
        check_batch(OP, "alpha", a.batch(), "one row of class weights", 1)?;
    }
    let n = logits.batch();
    if n == 0 {
        return Err(Error::EmptyBatch { op: OP });
    }
    let dx = grad_buf(grad, n)?;
    let v = logits.device().focal_loss(
        &logits.buf,
        &labels.buf,
        alpha.map(|a| &a.buf),
        gamma,
        dx,
        n,
        C,
    )?;
    finish(OP, v)
}

/// KL divergence `KL(target ‖ e^input)` averaged over the batch; `input`
/// holds log-probabilities, `target` probabilities (or log-probabilities
/// with `log_target`).
pub fn kl_div<S: Shape, E: Elem, D: LossKernels<E>>(
    input: &Tensor<S, E, D>,
    target: &Tensor<S, E, D>,
    log_target: bool,
    grad: Option<&mut Tensor<S, E, D>>,
) -> Result<E> {
    const OP: &str = "kl_div";
    check_batch(OP, "input", input.batch(), "target", target.batch())?;
    let n = input.batch();
    if n == 0 {
        return Err(Error::EmptyBatch { op: OP });
    }
    let dx = grad_buf(grad, n)?;
    let v = input
        .device()
        .kl_div(&input.buf, &target.buf, log_target, dx, n, S::NUMEL)?;
    finish(OP, v)
}

/// `(max, log Σ e^{x − max} + max)` of one row.
fn log_sum_exp<E: Elem>(xr: &[E]) -> E {
    let m = xr.iter().copied().fold(E::neg_infinity(), E::max);
    let s: E = xr.iter().map(|v| (*v - m).exp()).sum();
    m + s.ln()
}

/// The CPU body of [`Backend::soft_cross_entropy`].
pub(crate) fn cpu_soft_cross_entropy<E: Elem>(
    x: &[E],
    target: LossTarget<'_, E, crate::Cpu>,
    smoothing: f64,
    mut dx: Option<&mut Vec<E>>,
    rows: usize,
    cols: usize,
) -> Result<E> {
    let inv = E::one() / E::of(rows as f64);
    let (keep, spread) = (E::of(1.0 - smoothing), E::of(smoothing / cols as f64));
    let mut total = E::zero();
    for r in 0..rows {
        let xr = &x[r * cols..][..cols];
        let lse = log_sum_exp(xr);
        let q = |k: usize| -> Result<E> {
            let t = match target {
                LossTarget::Dense(t) => t[r * cols + k],
                LossTarget::Classes(y) => {
                    let y = y[r] as usize;
                    if y >= cols {
                        return Err(Error::LabelOutOfRange {
                            index: r,
                            label: y,
                            classes: cols,
                        });
                    }
                    if k == y {
                        E::one()
                    } else {
                        E::zero()
                    }
                }
            };
            Ok(keep * t + spread)
        };
        let mut sum_q = E::zero();
        for k in 0..cols {
            let qk = q(k)?;
            total = total + qk * (lse - xr[k]);
            sum_q = sum_q + qk;
        }
        if let Some(dx) = dx.as_deref_mut() {
            for k in 0..cols {
                dx[r * cols + k] = ((xr[k] - lse).exp() * sum_q - q(k)?) * inv;
            }
        }
    }
    Ok(total * inv)
}

/// The CPU body of [`Backend::focal_loss`].
pub(crate) fn cpu_focal<E: Elem>(
    x: &[E],
    labels: &[u32],
    alpha: Option<&[E]>,
    gamma: f64,
    mut dx: Option<&mut Vec<E>>,
    rows: usize,
    cols: usize,
) -> Result<E> {
    let inv = E::one() / E::of(rows as f64);
    let g = E::of(gamma);
    let mut total = E::zero();
    for r in 0..rows {
        let xr = &x[r * cols..][..cols];
        let y = labels[r] as usize;
        if y >= cols {
            return Err(Error::LabelOutOfRange {
                index: r,
                label: y,
                classes: cols,
            });
        }
        let a = alpha.map_or(E::one(), |a| a[y]);
        let lt = xr[y] - log_sum_exp(xr);
        let pt = lt.exp();
        let u = -lt.exp_m1();
        let ug = u.powf(g);
        total = total - a * ug * lt;
        if let Some(dx) = dx.as_deref_mut() {
            let focus = if gamma == 0.0 || u == E::zero() {
                E::zero()
            } else {
                g * (ug / u) * pt * lt
            };
            let k = a * (focus - ug) * inv;
            for j in 0..cols {
                let pj = (xr[j] - xr[y]).exp() * pt;
                let d = if j == y { E::one() } else { E::zero() };
                dx[r * cols + j] = k * (d - pj);
            }
        }
    }
    Ok(total * inv)
}

/// The CPU body of [`Backend::kl_div`].
pub(crate) fn cpu_kl_div<E: Elem>(
    x: &[E],
    t: &[E],
    log_target: bool,
    mut dx: Option<&mut Vec<E>>,
    rows: usize,
    cols: usize,
) -> Result<E> {
    let inv = E::one() / E::of(rows as f64);
    let mut total = E::zero();
    for i in 0..rows * cols {
        let (l, w) = if log_target {
            let e = t[i].exp();
            (e * (t[i] - x[i]), e)
        } else {
            // PyTorch's xlogy(t, t) − t·x: 0·log 0 = 0, NaN for t < 0.
            let tlogt = if t[i] == E::zero() {
                E::zero()
            } else {
                t[i] * t[i].ln()
            };
            (tlogt - t[i] * x[i], t[i])
        };
        total = total + l;
        if let Some(dx) = dx.as_deref_mut() {
            dx[i] = -w * inv;
        }
    }
    Ok(total * inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{numeric_grad, rel_err};
    use crate::Cpu;

    fn t2(v: &[f64]) -> Tensor<S1<2>, f64> {
        Tensor::from_slice(&Cpu, v).unwrap()
    }

    /// Logits (0, ln 3) give p = (1/4, 3/4).
    #[test]
    fn soft_targets_and_smoothing_by_hand() {
        let x = t2(&[0.0, 3f64.ln()]);
        let mut g = Tensor::empty(&Cpu).unwrap();
        // q = (½, ½): −½ ln ¼ − ½ ln ¾ = ½ ln(16/3); ∂ = p − q = (−¼, ¼).
        let l = soft_cross_entropy(&x, &t2(&[0.5, 0.5]), 0.0, Some(&mut g)).unwrap();
        assert!((l - 0.5 * (16.0f64 / 3.0).ln()).abs() < 1e-15, "{l}");
        assert!(rel_err(&g.to_vec().unwrap(), &[-0.25, 0.25]) < 1e-14);
        // Label 1 with ε = 0.2, C = 2: q = (0.1, 0.9): 0.1 ln 4 + 0.9 ln(4/3);
        // ∂ = (0.25 − 0.1, 0.75 − 0.9) = (0.15, −0.15).
        let y = Labels::<2>::new::<f64>(&Cpu, &[1]).unwrap();
        let l = cross_entropy_smoothed(&x, &y, 0.2, Some(&mut g)).unwrap();
        assert!(
            (l - (0.1 * 4f64.ln() + 0.9 * (4.0f64 / 3.0).ln())).abs() < 1e-15,
            "{l}"
        );
        assert!(rel_err(&g.to_vec().unwrap(), &[0.15, -0.15]) < 1e-14);
        // The same through soft labels.
        let l2 = soft_cross_entropy(&x, &t2(&[0.0, 1.0]), 0.2, None).unwrap();
        assert!((l - l2).abs() < 1e-15);
        assert!(cross_entropy_smoothed(&x, &y, 1.5, None).is_err());
    }

    #[test]
    fn focal_by_hand() {
        let x = t2(&[0.0, 3f64.ln()]);
        let y = Labels::<2>::new::<f64>(&Cpu, &[1]).unwrap();
        // p_t = ¾, γ = 2: −(¼)²·ln ¾ = 0.0625 · 0.28768207245178 = 0.01798012952823631.
        let l = focal_loss(&x, &y, 2.0, None, None).unwrap();
        assert!((l - 0.0625 * (4.0f64 / 3.0).ln()).abs() < 1e-16, "{l}");
        assert!((l - 0.01798012952823631).abs() < 1e-15);
        // α = (0.3, 0.7) weighs class 1 by 0.7.
        let a = t2(&[0.3, 0.7]);
        assert!((focal_loss(&x, &y, 2.0, Some(&a), None).unwrap() - 0.7 * l).abs() < 1e-16);
        // γ = 0 is cross-entropy: −ln ¾.
        assert!((focal_loss(&x, &y, 0.0, None, None).unwrap() - (4.0f64 / 3.0).ln()).abs() < 1e-15);
        // A sample classified with certainty contributes nothing, not NaN.
        let sure = t2(&[-800.0, 800.0]);
        let mut g = Tensor::empty(&Cpu).unwrap();
        assert_eq!(focal_loss(&sure, &y, 0.5, None, Some(&mut g)).unwrap(), 0.0);
        assert!(g.to_vec().unwrap().iter().all(|v| *v == 0.0));
    }

    #[test]
    fn kl_by_hand() {
        // t = (½, ½), input = log(¼, ¾): ½ ln 2 + ½ ln(2/3) = ½ ln(4/3).
        let x = t2(&[0.25f64.ln(), 0.75f64.ln()]);
        let l = kl_div(&x, &t2(&[0.5, 0.5]), false, None).unwrap();
        assert!((l - 0.5 * (4.0f64 / 3.0).ln()).abs() < 1e-15, "{l}");
        // A zero in the target contributes 0: t = (0, 1) gives ln(1/¾).
        let mut g = Tensor::empty(&Cpu).unwrap();
        let l = kl_div(&x, &t2(&[0.0, 1.0]), false, Some(&mut g)).unwrap();
        assert!((l - (4.0f64 / 3.0).ln()).abs() < 1e-15, "{l}");
        assert_eq!(g.to_vec().unwrap(), [0.0, -1.0]);
        // log_target with t = log(½, ½) gives the first value again.
        let lt = kl_div(&x, &t2(&[0.5f64.ln(), 0.5f64.ln()]), true, None).unwrap();
        assert!((lt - 0.5 * (4.0f64 / 3.0).ln()).abs() < 1e-15);
        // Identical distributions: 0.
        assert!(kl_div(&x, &t2(&[0.25, 0.75]), false, None).unwrap().abs() < 1e-16);
    }

    /// Every new loss's gradient against central differences.
    #[test]
    fn gradchecks() {
        let xs: Vec<f64> = (0..12)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.37)
            .collect();
        // Soft targets: rows of positive values summing to 1 (and one that does not).
        let ts = [0.1, 0.2, 0.3, 0.4, 0.7, 0.0, 0.3, 0.0, 0.25, 0.25, 0.3, 0.4];
        let y = Labels::<4>::new::<f64>(&Cpu, &[3, 0, 2]).unwrap();
        let t = Tensor::<S1<4>, f64>::from_slice(&Cpu, &ts).unwrap();
        let a = Tensor::<S1<4>, f64>::from_slice(&Cpu, &[0.1, 0.2, 0.3, 0.4]).unwrap();
        type X = Tensor<S1<4>, f64>;
        type F<'a> = Box<dyn Fn(&X, Option<&mut X>) -> f64 + 'a>;
        let cases: Vec<(&str, F)> = vec![
            (
                "soft_ce",
                Box::new(|x, g| soft_cross_entropy(x, &t, 0.0, g).unwrap()),
            ),
            (
                "soft_ce_smoothed",
                Box::new(|x, g| soft_cross_entropy(x, &t, 0.15, g).unwrap()),
            ),
            (
                "ce_smoothed",
                Box::new(|x, g| cross_entropy_smoothed(x, &y, 0.1, g).unwrap()),
            ),
            (
                "focal_2",
                Box::new(|x, g| focal_loss(x, &y, 2.0, None, g).unwrap()),
            ),
            (
                "focal_half_alpha",
                Box::new(|x, g| focal_loss(x, &y, 0.5, Some(&a), g).unwrap()),
            ),
            ("kl", Box::new(|x, g| kl_div(x, &t, false, g).unwrap())),
            (
                "kl_log_target",
                Box::new(|x, g| kl_div(x, &t, true, g).unwrap()),
            ),
        ];
        for (name, f) in cases {
            let x = X::from_slice(&Cpu, &xs).unwrap();
            let mut g = Tensor::empty(&Cpu).unwrap();
            f(&x, Some(&mut g));
            let num = numeric_grad(&xs, |v| f(&X::from_slice(&Cpu, v).unwrap(), None));
            let err = rel_err(&g.to_vec().unwrap(), &num);
            assert!(err < 1e-6, "{name}: {err}");
        }
    }
}

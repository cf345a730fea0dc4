//! Losses. Each returns the loss averaged over the batch and, when given a
//! buffer, writes its gradient with respect to the prediction.
//!
//! | function | per-sample loss | gradient `∂L/∂x` (before `1/N`) | PyTorch |
//! |---|---|---|---|
//! | [`cross_entropy`] | `log Σ_k e^{x_k} − x_y` (log-sum-exp after subtracting the max) | `softmax(x) − onehot(y)` | `F.cross_entropy` |
//! | [`cross_entropy_tokens`] | the same at every position of `[T, V]` logits, ignored positions skipped | the same, 0 where ignored; `N` = counted positions | `F.cross_entropy(x.view(-1, V), y.view(-1), ignore_index=…)` |
//! | [`hinge`] | `Σ_{j≠y} max(0, x_j − x_y + Δ)` | `[margin_j > 0]` at `j`, `−#{margins > 0}` at `y` | `F.multi_margin_loss` ÷ C (see below) |
//! | [`mse`] | `(x − t)²` per element | `2(x − t)` | `F.mse_loss` |
//! | [`l1`] | `|x − t|` per element | `sign(x − t)` (0 at 0) | `F.l1_loss` |
//! | [`bce_with_logits`] | `max(x,0) − x t + log(1 + e^{−|x|})` per element | `σ(x) − t` | `F.binary_cross_entropy_with_logits` |
//! | [`bce_with_logits_sum`] | the same, summed over each sample's elements, mean over the batch | `(σ(x) − t) / B` | `F.binary_cross_entropy_with_logits(reduction='sum') / B` |
//!
//! `N` is the number of samples for the class losses and the number of
//! elements for the element-wise ones (PyTorch's `reduction='mean'`).
//!
//! The multiclass SVM loss follows the course (a sum over the wrong classes,
//! so the cat example gives 2.9); PyTorch's `multi_margin_loss` also divides
//! each sample's sum by the number of classes.
//!
//! Losses between distributions — cross-entropy with soft labels and label
//! smoothing, focal loss, KL divergence — are in [`distribution`] (formulas
//! there) and re-exported here; knowledge distillation's temperature-scaled
//! KL plus hard labels is [`Distill`] in [`temperature`], FixMatch's
//! confidence-masked pseudo-label loss [`PseudoLabel`] in [`pseudo_label`],
//! SimCLR's contrastive NT-Xent [`NtXent`] in [`nt_xent`].
//!
//! The losses of texture synthesis and style transfer — Gram matrices, the
//! style and content losses, total variation — are in [`style`] (formulas
//! there) and re-exported here.
//!
//! A loss that comes out NaN or infinite is an [`Error::NonFinite`] naming the
//! loss, so a diverging run stops with a message instead of training on NaNs.

pub mod distribution;
pub mod nt_xent;
pub mod pseudo_label;
pub mod style;
pub mod temperature;

pub use distribution::{cross_entropy_smoothed, focal_loss, kl_div, soft_cross_entropy};
pub use nt_xent::NtXent;
pub use pseudo_label::{confident_targets, PseudoLabel};
pub use style::{gram, gram_backward, total_variation, ContentTarget, StyleTarget};
pub use temperature::Distill;

use crate::device::{LossKind, LossTarget};
use crate::elem::Elem;
use crate::error::{check_batch, Error, Result};
use crate::kernels::LossKernels;
use crate::shape::{Shape, S1, S2};
use crate::tensor::{Labels, Tensor, Tokens};

fn finish<E: Elem>(name: &'static str, v: E) -> Result<E> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::NonFinite {
            what: format!("{name} loss"),
            value: v.f64(),
        })
    }
}

/// The per-sample shape a classification loss accepts for labels of `C`
/// classes: class scores `[C]` (`S1<C>`), nothing else. A trait rather than
/// `S1<C>` in the signature so that an image, a sequence or scores of another
/// class count fed to a loss is an error that says so in words.
#[diagnostic::on_unimplemented(
    message = "a classification loss needs class scores `[C]` per sample, one per class of the labels, but the scores tensor has per-sample shape `{Self}`",
    label = "these are not class scores for the labels' class count",
    note = "scores and labels must agree: `Tensor<S1<C>>` with `Labels<C>`; end the network with `flatten` and a `Linear(C)` to get class scores"
)]
pub trait ClassScores<const C: usize>: Shape {}
impl<const C: usize> ClassScores<C> for S1<C> {}

fn class_loss<S: ClassScores<C>, const C: usize, E: Elem, D: LossKernels<E>>(
    name: &'static str,
    kind: LossKind,
    logits: &Tensor<S, E, D>,
    labels: &Labels<C, D>,
    grad: Option<&mut Tensor<S, E, D>>,
) -> Result<E> {
    check_batch(name, "logits", logits.batch(), "labels", labels.len())?;
    if logits.batch() == 0 {
        return Err(Error::EmptyBatch { op: name });
    }
    let dx = match grad {
        Some(g) => {
            g.set_batch(logits.batch())?;
            Some(&mut g.buf)
        }
        None => None,
    };
    let v = logits.device().loss(
        kind,
        &logits.buf,
        LossTarget::Classes(&labels.buf),
        dx,
        logits.batch(),
        C,
    )?;
    finish(name, v)
}

fn dense_loss<S: Shape, E: Elem, D: LossKernels<E>>(
    name: &'static str,
    kind: LossKind,
    x: &Tensor<S, E, D>,
    target: &Tensor<S, E, D>,
    grad: Option<&mut Tensor<S, E, D>>,
) -> Result<E> {
    check_batch(name, "prediction", x.batch(), "target", target.batch())?;
    if x.batch() == 0 {
        return Err(Error::EmptyBatch { op: name });
    }
    let dx = match grad {
        Some(g) => {
            g.set_batch(x.batch())?;
            Some(&mut g.buf)
        }
        None => None,
    };
    let v = x.device().loss(
        kind,
        &x.buf,
        LossTarget::Dense(&target.buf),
        dx,
        x.batch(),
        S::NUMEL,
    )?;
    finish(name, v)
}

/// Softmax cross-entropy of `C` logits per sample against class labels.
pub fn cross_entropy<S: ClassScores<C>, const C: usize, E: Elem, D: LossKernels<E>>(
    logits: &Tensor<S, E, D>,
    labels: &Labels<C, D>,
    grad: Option<&mut Tensor<S, E, D>>,
) -> Result<E> {
    class_loss(
        "cross_entropy",
        LossKind::SoftmaxCrossEntropy,
        logits,
        labels,
        grad,
    )
}

/// Per-position softmax cross-entropy of a batch of sequences: `[T, V]`
/// logits per sample against `Tokens<S1<T>, V>` targets (the same `V`, so a
/// vocabulary mismatch does not compile), exactly PyTorch's
/// `F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=i,
/// reduction='mean')`:
///
/// `L = (1/N) Σ_{(b,t) : y[b,t] ≠ i} (log Σ_k e^{x[b,t,k]} − x[b,t,y[b,t]])`,
/// `N` = the number of positions of the whole batch whose target is not
/// `ignore_index`; `∂L/∂x[b,t,:] = (softmax(x[b,t,:]) − onehot(y[b,t])) / N`
/// at counted positions and `0` at ignored ones.
///
/// `ignore_index = None` counts every position. When every position is
/// ignored the mean is over nothing: PyTorch returns NaN; kiln returns
/// [`Error::InvalidArgument`] saying so, because a NaN loss would otherwise
/// reach the optimizer or stop the run later with a less helpful message (a
/// caller that wants to skip such batches checks for the error).
pub fn cross_entropy_tokens<const T: usize, const V: usize, E: Elem, D: LossKernels<E>>(
    logits: &Tensor<S2<T, V>, E, D>,
    targets: &Tokens<S1<T>, V, D>,
    ignore_index: Option<u32>,
    grad: Option<&mut Tensor<S2<T, V>, E, D>>,
) -> Result<E> {
    const NAME: &str = "cross_entropy_tokens";
    check_batch(NAME, "logits", logits.batch(), "targets", targets.batch())?;
    if logits.batch() == 0 || T == 0 {
        return Err(Error::EmptyBatch { op: NAME });
    }
    let positions = match ignore_index {
        Some(i) => targets.as_slice().iter().filter(|&&y| y != i).count(),
        None => targets.numel(),
    };
    if positions == 0 {
        return Err(Error::invalid(
            NAME,
            format!(
                "all {} positions of the batch have the target ignore_index = {}: the mean over no positions is undefined (PyTorch returns NaN)",
                targets.numel(),
                ignore_index.unwrap_or(0)
            ),
        ));
    }
    let dx = match grad {
        Some(g) => {
            g.set_batch(logits.batch())?;
            Some(&mut g.buf)
        }
        None => None,
    };
    let v = logits.device().loss(
        LossKind::TokenCrossEntropy {
            ignore_index,
            positions,
        },
        &logits.buf,
        LossTarget::Classes(&targets.buf),
        dx,
        logits.batch() * T,
        V,
    )?;
    finish(NAME, v)
}

/// Multiclass SVM (hinge) loss with margin `margin` (the course uses Δ = 1).
///
/// A NaN score makes the loss NaN, so this returns the non-finite-loss error;
/// PyTorch's `multi_margin_loss` instead skips it (its `z > 0` test is false
/// for NaN) and can return a finite loss for a NaN input.
pub fn hinge<S: ClassScores<C>, const C: usize, E: Elem, D: LossKernels<E>>(
    scores: &Tensor<S, E, D>,
    labels: &Labels<C, D>,
    margin: f64,
    grad: Option<&mut Tensor<S, E, D>>,
) -> Result<E> {
    class_loss("hinge", LossKind::Hinge { margin }, scores, labels, grad)
}

/// Mean squared error.
pub fn mse<S: Shape, E: Elem, D: LossKernels<E>>(
    x: &Tensor<S, E, D>,
    target: &Tensor<S, E, D>,
    grad: Option<&mut Tensor<S, E, D>>,
) -> Result<E> {
    dense_loss("mse", LossKind::Mse, x, target, grad)
}

/// Mean absolute error.
pub fn l1<S: Shape, E: Elem, D: LossKernels<E>>(
    x: &Tensor<S, E, D>,
    target: &Tensor<S, E, D>,
    grad: Option<&mut Tensor<S, E, D>>,
) -> Result<E> {
    dense_loss("l1", LossKind::L1, x, target, grad)
}

/// Binary cross-entropy on logits (targets in `[0, 1]`).
pub fn bce_with_logits<S: Shape, E: Elem, D: LossKernels<E>>(
    logits: &Tensor<S, E, D>,
    target: &Tensor<S, E, D>,
    grad: Option<&mut Tensor<S, E, D>>,
) -> Result<E> {
    dense_loss(
        "bce_with_logits",
        LossKind::BceWithLogits,
        logits,
        target,
        grad,
    )
}

/// Binary cross-entropy on logits summed over each sample's elements and
/// averaged over the batch: `(1/B) Σ_b Σ_i [max(x,0) − x t + log(1 + e^{−|x|})]`,
/// gradient `(σ(x) − t) / B` — the Bernoulli negative log-likelihood of a
/// sample in nats (PyTorch: `F.binary_cross_entropy_with_logits(x, t,
/// reduction='sum') / B`).
///
/// Computed as [`bce_with_logits`]'s mean times the number of elements per
/// sample (`S::NUMEL`), with the gradient rescaled on the host.
pub fn bce_with_logits_sum<S: Shape, E: Elem, D: LossKernels<E>>(
    logits: &Tensor<S, E, D>,
    target: &Tensor<S, E, D>,
    grad: Option<&mut Tensor<S, E, D>>,
) -> Result<E> {
    let n = E::of(S::NUMEL as f64);
    match grad {
        Some(g) => {
            let v = bce_with_logits(logits, target, Some(&mut *g))?;
            let scaled: Vec<E> = g.to_vec()?.into_iter().map(|d| d * n).collect();
            g.copy_from_slice(&scaled)?;
            finish("bce_with_logits_sum", v * n)
        }
        None => finish(
            "bce_with_logits_sum",
            bce_with_logits(logits, target, None)? * n,
        ),
    }
}

/// The CPU implementation of every loss (sequential sums: deterministic).
pub(crate) fn cpu_loss<E: Elem>(
    kind: LossKind,
    x: &[E],
    target: LossTarget<'_, E, crate::Cpu>,
    mut dx: Option<&mut Vec<E>>,
    rows: usize,
    cols: usize,
) -> Result<E> {
    let mut total = E::zero();
    match (kind, target) {
        (
            LossKind::SoftmaxCrossEntropy | LossKind::TokenCrossEntropy { .. },
            LossTarget::Classes(labels),
        ) => {
            let (ignore, count) = match kind {
                LossKind::TokenCrossEntropy {
                    ignore_index,
                    positions,
                } => (ignore_index, positions),
                _ => (None, rows),
            };
            let inv = E::one() / E::of(count as f64);
            for r in 0..rows {
                let xr = &x[r * cols..][..cols];
                if Some(labels[r]) == ignore {
                    if let Some(dx) = dx.as_deref_mut() {
                        dx[r * cols..][..cols].fill(E::zero());
                    }
                    continue;
                }
                let y = labels[r] as usize;
                let m = xr.iter().copied().fold(E::neg_infinity(), E::max);
                let s: E = xr.iter().map(|v| (*v - m).exp()).sum();
                let lse = m + s.ln();
                total = total + (lse - xr[y]);
                if let Some(dx) = dx.as_deref_mut() {
                    let dr = &mut dx[r * cols..][..cols];
                    for j in 0..cols {
                        let p = (xr[j] - lse).exp();
                        dr[j] = (p - if j == y { E::one() } else { E::zero() }) * inv;
                    }
                }
            }
            Ok(total * inv)
        }
        (LossKind::Hinge { margin }, LossTarget::Classes(labels)) => {
            let inv = E::one() / E::of(rows as f64);
            let delta = E::of(margin);
            for r in 0..rows {
                let xr = &x[r * cols..][..cols];
                let y = labels[r] as usize;
                let mut count = E::zero();
                for j in 0..cols {
                    // `max(z, 0)` keeping a NaN (`f32::max` would drop it).
                    let z = xr[j] - xr[y] + delta;
                    let mj = if j == y || z <= E::zero() {
                        E::zero()
                    } else {
                        z
                    };
                    total = total + mj;
                    let active = j != y && mj > E::zero();
                    if active {
                        count = count + E::one();
                    }
                    if let Some(dx) = dx.as_deref_mut() {
                        dx[r * cols + j] = if active { inv } else { E::zero() };
                    }
                }
                if let Some(dx) = dx.as_deref_mut() {
                    dx[r * cols + y] = -count * inv;
                }
            }
            Ok(total * inv)
        }
        (LossKind::Mse | LossKind::L1 | LossKind::BceWithLogits, LossTarget::Dense(t)) => {
            let n = rows * cols;
            let inv = E::one() / E::of(n as f64);
            let two = E::of(2.0);
            for i in 0..n {
                let (xi, ti) = (x[i], t[i]);
                let (l, g) = match kind {
                    LossKind::Mse => ((xi - ti) * (xi - ti), two * (xi - ti)),
                    LossKind::L1 => {
                        let d = xi - ti;
                        let s = if d > E::zero() {
                            E::one()
                        } else if d < E::zero() {
                            -E::one()
                        } else {
                            E::zero()
                        };
                        (d.abs(), s)
                    }
                    _ => {
                        let l = xi.max(E::zero()) - xi * ti + (-xi.abs()).exp().ln_1p();
                        (l, crate::kernels::unary::sigmoid(xi) - ti)
                    }
                };
                total = total + l;
                if let Some(dx) = dx.as_deref_mut() {
                    dx[i] = g * inv;
                }
            }
            Ok(total * inv)
        }
        (k, _) => Err(Error::invalid(
            "loss",
            format!("kiln internal error: {k:?} given the wrong kind of target"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{numeric_grad, rel_err};
    use crate::Cpu;

    #[test]
    fn svm_cat_example_is_2_9() {
        // Scores for the cat image: cat 3.2, car 5.1, frog −1.7; label cat.
        // max(0, 5.1 − 3.2 + 1) + max(0, −1.7 − 3.2 + 1) = 2.9 + 0 = 2.9.
        let s = Tensor::<S1<3>, f64>::from_slice(&Cpu, &[3.2, 5.1, -1.7]).unwrap();
        let y = Labels::<3>::new::<f64>(&Cpu, &[0]).unwrap();
        let l = hinge(&s, &y, 1.0, None).unwrap();
        assert!((l - 2.9).abs() < 1e-12, "{l}");
        // The course's three examples (cat 2.9, car 0, frog 12.9) average to 5.27.
        let s = Tensor::<S1<3>, f64>::from_slice(
            &Cpu,
            &[3.2, 5.1, -1.7, 1.3, 4.9, 2.0, 2.2, 2.5, -3.1],
        )
        .unwrap();
        let y = Labels::<3>::new::<f64>(&Cpu, &[0, 1, 2]).unwrap();
        let l = hinge(&s, &y, 1.0, None).unwrap();
        assert!((l - (2.9 + 0.0 + 12.9) / 3.0).abs() < 1e-12, "{l}");
    }

    #[test]
    fn cross_entropy_of_cat_scores() {
        // −ln softmax(3.2, 5.1, −1.7)[cat] = −ln 0.12998… = 2.04036
        let s = Tensor::<S1<3>, f64>::from_slice(&Cpu, &[3.2, 5.1, -1.7]).unwrap();
        let y = Labels::<3>::new::<f64>(&Cpu, &[0]).unwrap();
        let l = cross_entropy(&s, &y, None).unwrap();
        assert!((l - 2.0403551528).abs() < 1e-9, "{l}");
        // Stable for huge logits.
        let s = Tensor::<S1<3>, f64>::from_slice(&Cpu, &[1000.0, 0.0, -1000.0]).unwrap();
        assert!((cross_entropy(&s, &y, None).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn batch_mismatch_is_an_error() {
        let s = Tensor::<S1<3>, f64>::from_slice(&Cpu, &[0.0; 6]).unwrap();
        let y = Labels::<3>::new::<f64>(&Cpu, &[0]).unwrap();
        let e = cross_entropy(&s, &y, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "batch size mismatch in cross_entropy: logits has 2 samples but labels has 1"
        );
    }

    #[test]
    fn nan_is_an_error() {
        let s = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[f64::NAN, 0.0]).unwrap();
        let t = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[0.0, 0.0]).unwrap();
        let e = mse(&s, &t, None).unwrap_err();
        assert!(
            e.to_string().starts_with("non-finite value in mse loss"),
            "{e}"
        );
    }

    /// Every loss's gradient against central differences in f64.
    #[test]
    fn gradchecks() {
        let xs: Vec<f64> = (0..12)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.37)
            .collect();
        let ts: Vec<f64> = (0..12).map(|i| ((i * 5 % 7) as f64) / 7.0).collect();
        let labels = Labels::<4>::new::<f64>(&Cpu, &[3, 0, 2]).unwrap();
        let target = Tensor::<S1<4>, f64>::from_slice(&Cpu, &ts).unwrap();
        type F = fn(
            &Tensor<S1<4>, f64>,
            Option<&mut Tensor<S1<4>, f64>>,
            &Labels<4>,
            &Tensor<S1<4>, f64>,
        ) -> f64;
        let cases: [(&str, F); 6] = [
            ("ce", |x, g, y, _| cross_entropy(x, y, g).unwrap()),
            ("hinge", |x, g, y, _| hinge(x, y, 1.0, g).unwrap()),
            ("mse", |x, g, _, t| mse(x, t, g).unwrap()),
            ("l1", |x, g, _, t| l1(x, t, g).unwrap()),
            ("bce", |x, g, _, t| bce_with_logits(x, t, g).unwrap()),
            ("bce_sum", |x, g, _, t| {
                bce_with_logits_sum(x, t, g).unwrap()
            }),
        ];
        for (name, f) in cases {
            let x = Tensor::<S1<4>, f64>::from_slice(&Cpu, &xs).unwrap();
            let mut g = Tensor::empty(&Cpu).unwrap();
            f(&x, Some(&mut g), &labels, &target);
            let num = numeric_grad(&xs, |v| {
                f(
                    &Tensor::from_slice(&Cpu, v).unwrap(),
                    None,
                    &labels,
                    &target,
                )
            });
            let err = rel_err(&g.to_vec().unwrap(), &num);
            assert!(err < 1e-6, "{name}: {err}");
        }
    }

    #[test]
    fn cross_entropy_tokens_gradient_matches_finite_differences() {
        // 2 sequences of T = 4 over V = 5; id 2 ignored (three positions)
        let ids = [2, 0, 4, 2, 1, 2, 3, 3];
        let t = Tokens::<S1<4>, 5>::new::<f64>(&Cpu, &ids).unwrap();
        let mut r = crate::rng(4);
        let xs = crate::testing::random_input(2 * 4 * 5, &mut r);
        let x = Tensor::<S2<4, 5>, f64>::from_slice(&Cpu, &xs).unwrap();
        for ignore in [None, Some(2)] {
            let mut g = Tensor::empty(&Cpu).unwrap();
            cross_entropy_tokens(&x, &t, ignore, Some(&mut g)).unwrap();
            let num = numeric_grad(&xs, |v| {
                let xv = Tensor::<S2<4, 5>, f64>::from_slice(&Cpu, v).unwrap();
                cross_entropy_tokens(&xv, &t, ignore, None).unwrap()
            });
            let gv = g.to_vec().unwrap();
            let err = rel_err(&gv, &num);
            assert!(err < 1e-6, "{ignore:?}: {err}");
            if ignore.is_some() {
                // ignored positions 0, 3, 5 get exactly zero gradient
                for p in [0, 3, 5] {
                    assert!(
                        gv[p * 5..p * 5 + 5].iter().all(|&v| v == 0.0),
                        "position {p}"
                    );
                }
            }
        }
        // the mean is over counted positions only: with one counted position
        // (sample 0, t = 1, id 0) the loss is that position's cross-entropy
        let mut one = [2u32; 8];
        one[1] = 0;
        let t1 = Tokens::<S1<4>, 5>::new::<f64>(&Cpu, &one).unwrap();
        let row = &xs[5..10];
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        let v = cross_entropy_tokens(&x, &t1, Some(2), None).unwrap();
        assert!((v - (lse - row[0])).abs() < 1e-12, "{v}");
        let e = cross_entropy_tokens(
            &x,
            &Tokens::new::<f64>(&Cpu, &[2; 4]).unwrap(),
            Some(2),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("batch size mismatch"), "{e}");
    }
}

//! Confidence-masked pseudo-labels, FixMatch's unlabelled loss (Sohn et al.
//! 2020; course lesson 18). Re-exported from [`crate::loss`].
//!
//! The model's prediction on a weakly augmented view, `q_b = softmax(w_b)`,
//! becomes the hard target of the strongly augmented view's logits `s_b`
//! when its confidence reaches the threshold `τ`:
//!
//! ```text
//! m_b   = 1[max_k q_bk ≥ τ],   ŷ_b = argmax_k q_bk
//! L_u   = (1/N) Σ_b m_b · CE(s_b, ŷ_b)                 (N: all N unlabelled samples)
//! ∂L_u/∂s_b = m_b · (softmax(s_b) − onehot(ŷ_b)) / N
//! ```
//!
//! No gradient flows into the weak view (FixMatch's stop-gradient). The
//! division is by the whole batch, not by the confident samples, as in
//! FixMatch, so the unlabelled loss grows as more samples pass the threshold.
//!
//! The mask and the one-hot targets are computed on the host from the weak
//! logits ([`confident_targets`], a plain function checked by hand); the
//! loss is then [`soft_cross_entropy`] against those rows, a zero row
//! contributing nothing to the loss or its gradient, so every device with
//! [`LossKernels`] runs it.

use crate::elem::Elem;
use crate::error::{check_batch, Error, Result};
use crate::kernels::LossKernels;
use crate::shape::S1;
use crate::tensor::Tensor;

use super::soft_cross_entropy;

/// Writes into `targets` (resized to `weak.len()`) one row per sample of the
/// `cols`-class logits `weak`: `onehot(argmax)` where `max softmax ≥
/// threshold`, zeros elsewhere; returns how many rows passed.
pub fn confident_targets<E: Elem>(
    weak: &[E],
    cols: usize,
    threshold: f64,
    targets: &mut Vec<E>,
) -> usize {
    targets.clear();
    targets.resize(weak.len(), E::zero());
    let mut passed = 0;
    for (r, row) in weak.chunks_exact(cols.max(1)).enumerate() {
        let (mut best, mut m) = (0, E::neg_infinity());
        for (k, v) in row.iter().enumerate() {
            if *v > m {
                (best, m) = (k, *v);
            }
        }
        // max softmax = 1 / Σ_k e^{x_k − max}.
        let z: E = row.iter().map(|v| (*v - m).exp()).sum();
        if (E::one() / z).f64() >= threshold {
            targets[r * cols + best] = E::one();
            passed += 1;
        }
    }
    passed
}

/// FixMatch's confidence-masked pseudo-label loss (see the module docs) with
/// its host and device buffers.
pub struct PseudoLabel<const C: usize, E: Elem, D: LossKernels<E>> {
    threshold: f64,
    host: Vec<E>,
    rows: Vec<E>,
    target: Tensor<S1<C>, E, D>,
}

impl<const C: usize, E: Elem, D: LossKernels<E>> PseudoLabel<C, E, D> {
    /// Confidence threshold `threshold ∈ [0, 1]` (FixMatch: 0.95).
    pub fn new(dev: &D, threshold: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&threshold) {
            return Err(Error::invalid(
                "PseudoLabel::new",
                format!("the confidence threshold must lie in [0, 1], got {threshold}"),
            ));
        }
        Ok(PseudoLabel {
            threshold,
            host: Vec::new(),
            rows: Vec::new(),
            target: Tensor::empty(dev)?,
        })
    }

    /// The confidence threshold `τ`.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The loss `L_u` of the strong view's logits `strong` against the
    /// confident predictions of the weak view's logits `weak`, its gradient
    /// with respect to `strong` written into `grad`, and the number of
    /// samples that passed the threshold.
    pub fn loss(
        &mut self,
        strong: &Tensor<S1<C>, E, D>,
        weak: &Tensor<S1<C>, E, D>,
        grad: Option<&mut Tensor<S1<C>, E, D>>,
    ) -> Result<(E, usize)> {
        const OP: &str = "PseudoLabel::loss";
        check_batch(
            OP,
            "strong-view logits",
            strong.batch(),
            "weak-view logits",
            weak.batch(),
        )?;
        if strong.batch() == 0 {
            return Err(Error::EmptyBatch { op: OP });
        }
        self.host.resize(weak.batch() * C, E::zero());
        weak.copy_to_slice(&mut self.host)?;
        let passed = confident_targets(&self.host, C, self.threshold, &mut self.rows);
        self.target.set_batch(weak.batch())?;
        self.target.copy_from_slice(&self.rows)?;
        let l = soft_cross_entropy(strong, &self.target, 0.0, grad)?;
        Ok((l, passed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{numeric_grad, rel_err};
    use crate::Cpu;

    /// A hand-made batch of three samples over three classes: logits
    /// `(ln 98, 0, 0)` give max softmax 98/100 = 0.98 (passes 0.95), `(0,
    /// ln 18, 0)` give 0.9 (fails), `(0, 0, ln 38)` give 0.95 exactly (passes:
    /// the threshold is inclusive).
    #[test]
    fn mask_of_a_hand_made_batch() {
        let w = [
            98f64.ln(),
            0.0,
            0.0,
            0.0,
            18f64.ln(),
            0.0,
            0.0,
            0.0,
            38f64.ln() + 1e-12,
        ];
        let mut t = Vec::new();
        assert_eq!(confident_targets(&w, 3, 0.95, &mut t), 2);
        assert_eq!(t, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(confident_targets(&w, 3, 0.85, &mut t), 3);
        assert_eq!(confident_targets(&w, 3, 0.99, &mut t), 0);
        assert!(t.iter().all(|v| *v == 0.0));

        // The loss: only samples 0 and 2 count, divided by all 3. Strong
        // logits (0, ln 3, 0) on sample 0: −ln(1/5); (0, 0, 0) on sample 2: ln 3.
        let mut pl = PseudoLabel::<3, f64, Cpu>::new(&Cpu, 0.95).unwrap();
        let weak = Tensor::<S1<3>, f64>::from_slice(&Cpu, &w).unwrap();
        let s = [0.0, 3f64.ln(), 0.0, 5.0, -2.0, 1.0, 0.0, 0.0, 0.0];
        let strong = Tensor::<S1<3>, f64>::from_slice(&Cpu, &s).unwrap();
        let mut g = Tensor::empty(&Cpu).unwrap();
        let (l, n) = pl.loss(&strong, &weak, Some(&mut g)).unwrap();
        assert_eq!(n, 2);
        assert!((l - (5f64.ln() + 3f64.ln()) / 3.0).abs() < 1e-14, "{l}");
        let g = g.to_vec().unwrap();
        // Sample 0: (p − onehot(0))/3 = ((0.2 − 1), 0.6, 0.2)/3; sample 1 masked.
        let want = [
            -0.8 / 3.0,
            0.2,
            0.2 / 3.0,
            0.0,
            0.0,
            0.0,
            1.0 / 9.0,
            1.0 / 9.0,
            -2.0 / 9.0,
        ];
        assert!(rel_err(&g, &want) < 1e-13, "{g:?}");
    }

    #[test]
    fn gradcheck() {
        let ws: Vec<f64> = (0..12)
            .map(|i| {
                if i == 0 || i == 10 {
                    6.0
                } else {
                    0.1 * i as f64
                }
            })
            .collect();
        let xs: Vec<f64> = (0..12)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.37)
            .collect();
        let weak = Tensor::<S1<4>, f64>::from_slice(&Cpu, &ws).unwrap();
        let mut pl = PseudoLabel::<4, f64, Cpu>::new(&Cpu, 0.9).unwrap();
        let mut g = Tensor::empty(&Cpu).unwrap();
        let x = Tensor::<S1<4>, f64>::from_slice(&Cpu, &xs).unwrap();
        let (_, n) = pl.loss(&x, &weak, Some(&mut g)).unwrap();
        assert!(n > 0 && n < 3, "{n} confident: the check needs both kinds");
        let num = numeric_grad(&xs, |v| {
            let x = Tensor::<S1<4>, f64>::from_slice(&Cpu, v).unwrap();
            pl.loss(&x, &weak, None).unwrap().0
        });
        assert!(rel_err(&g.to_vec().unwrap(), &num) < 1e-6);
        assert!(PseudoLabel::<4, f64, Cpu>::new(&Cpu, 1.5).is_err());
    }
}

//! Knowledge distillation: the KL divergence between a teacher's and a
//! student's distributions softened by a temperature `T`, scaled by `T²`
//! (Hinton, Vinyals & Dean 2015), plus the hard-label cross-entropy with a
//! weight `α`. Re-exported from [`crate::loss`].
//!
//! With student logits `s`, teacher logits `t` (`C` per sample, `N` samples),
//! `q = softmax(t / T)`, `p = softmax(s / T)`:
//!
//! ```text
//! soft(s)  = T² · (1/N) Σ_n KL(q_n ‖ p_n)
//!          = T² · (1/N) Σ_n [ CE(s_n/T, q_n) − CE(t_n/T, q_n) ]      (CE(t/T, q) = H(q))
//! ∂soft/∂s = T² · (1/T) · (p − q) / N = T · (p − q) / N
//! L        = (1 − α) · soft(s) + α · CE(s, y)
//! ∂L/∂s    = (1 − α) · T · (p − q) / N + α · (softmax(s) − onehot(y)) / N
//! ```
//!
//! The `T²` keeps the soft term's gradient on the scale of the hard term's
//! as `T` grows (the gradient of the unscaled KL shrinks like `1/T²` for
//! large `T`). The teacher is a constant: no gradient flows into `t`. PyTorch:
//! `T*T * F.kl_div(F.log_softmax(s/T, 1), F.softmax(t/T, 1), reduction='batchmean')`.
//!
//! Everything is composed of existing device operations (`axpy` for the
//! scaling by `1/T`, the softmax kernel for `q`, [`soft_cross_entropy`] for
//! both cross-entropies and [`cross_entropy`] for the hard term), so every
//! device that has [`LossKernels`] and [`SoftmaxKernels`] runs it; the
//! scratch buffers live in [`Distill`] and are reused, so a step allocates
//! nothing after the first.

use crate::device::Acc;
use crate::elem::Elem;
use crate::error::{check_batch, Error, Result};
use crate::kernels::{LossKernels, SoftmaxKernels};
use crate::shape::S1;
use crate::tensor::{Labels, Tensor};

use super::{cross_entropy, soft_cross_entropy};

/// The distillation loss with temperature `T` and hard-label weight `α`
/// (see the module docs for the formula), with its scratch buffers.
pub struct Distill<const C: usize, E: Elem, D: LossKernels<E> + SoftmaxKernels<E>> {
    temperature: f64,
    alpha: f64,
    zs: Tensor<S1<C>, E, D>,
    zt: Tensor<S1<C>, E, D>,
    q: Tensor<S1<C>, E, D>,
    g: Tensor<S1<C>, E, D>,
}

impl<const C: usize, E: Elem, D: LossKernels<E> + SoftmaxKernels<E>> Distill<C, E, D> {
    /// Temperature `temperature > 0` and weight `alpha ∈ [0, 1]` of the
    /// hard-label term (`alpha = 0`: soft targets only).
    pub fn new(dev: &D, temperature: f64, alpha: f64) -> Result<Self> {
        const OP: &str = "Distill";
        if !(temperature > 0.0 && temperature.is_finite()) {
            return Err(Error::invalid(
                OP,
                format!("the temperature must be finite and > 0, got {temperature}"),
            ));
        }
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::invalid(
                OP,
                format!("alpha (the hard-label weight) must lie in [0, 1], got {alpha}"),
            ));
        }
        Ok(Distill {
            temperature,
            alpha,
            zs: Tensor::empty(dev)?,
            zt: Tensor::empty(dev)?,
            q: Tensor::empty(dev)?,
            g: Tensor::empty(dev)?,
        })
    }

    /// The temperature `T`.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// The hard-label weight `α`.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// `T² · KL(softmax(t/T) ‖ softmax(s/T))` averaged over the batch, and
    /// its gradient `T · (p − q) / N` with respect to the student's logits
    /// written (`Acc::Set`) into `grad`.
    pub fn soft(
        &mut self,
        student: &Tensor<S1<C>, E, D>,
        teacher: &Tensor<S1<C>, E, D>,
        grad: Option<&mut Tensor<S1<C>, E, D>>,
    ) -> Result<E> {
        self.soft_weighted(student, teacher, 1.0, grad)
    }

    /// [`Distill::soft`] with its gradient multiplied by `w`.
    fn soft_weighted(
        &mut self,
        student: &Tensor<S1<C>, E, D>,
        teacher: &Tensor<S1<C>, E, D>,
        w: f64,
        grad: Option<&mut Tensor<S1<C>, E, D>>,
    ) -> Result<E> {
        const OP: &str = "Distill::soft";
        check_batch(
            OP,
            "student logits",
            student.batch(),
            "teacher logits",
            teacher.batch(),
        )?;
        let n = student.batch();
        if n == 0 {
            return Err(Error::EmptyBatch { op: OP });
        }
        let t = self.temperature;
        let inv_t = E::of(1.0 / t);
        let dev = student.device();
        let len = n * C;
        for z in [&mut self.zs, &mut self.zt, &mut self.q] {
            z.set_batch(n)?;
        }
        dev.axpy(inv_t, &student.buf, &mut self.zs.buf, len, Acc::Set)?;
        dev.axpy(inv_t, &teacher.buf, &mut self.zt.buf, len, Acc::Set)?;
        dev.softmax_fwd(&self.zt.buf, &mut self.q.buf, n, C)?;
        let want_grad = grad.is_some();
        let ce = soft_cross_entropy(&self.zs, &self.q, 0.0, want_grad.then_some(&mut self.g))?;
        let h = soft_cross_entropy(&self.zt, &self.q, 0.0, None)?;
        if let Some(g) = grad {
            g.set_batch(n)?;
            dev.axpy(E::of(w * t), &self.g.buf, &mut g.buf, len, Acc::Set)?;
        }
        Ok(E::of(t * t) * (ce - h))
    }

    /// The whole loss `(1 − α)·soft + α·CE(s, y)` and its gradient with
    /// respect to the student's logits, written (`Acc::Set`) into `grad`.
    pub fn loss(
        &mut self,
        student: &Tensor<S1<C>, E, D>,
        teacher: &Tensor<S1<C>, E, D>,
        labels: &Labels<C, D>,
        mut grad: Option<&mut Tensor<S1<C>, E, D>>,
    ) -> Result<E> {
        check_batch(
            "Distill::loss",
            "student logits",
            student.batch(),
            "labels",
            labels.len(),
        )?;
        let a = self.alpha;
        let soft = self.soft_weighted(student, teacher, 1.0 - a, grad.as_deref_mut())?;
        let hard = cross_entropy(student, labels, grad.is_some().then_some(&mut self.g))?;
        if let Some(g) = grad {
            let len = student.batch() * C;
            student
                .device()
                .axpy(E::of(a), &self.g.buf, &mut g.buf, len, Acc::Add)?;
        }
        Ok(E::of(1.0 - a) * soft + E::of(a) * hard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{numeric_grad, rel_err};
    use crate::Cpu;

    type X = Tensor<S1<3>, f64>;

    fn t3(v: &[f64]) -> X {
        Tensor::from_slice(&Cpu, v).unwrap()
    }

    /// Worked numbers: with `T = 2`, teacher logits `(0, 2 ln 3)` give
    /// `q = (¼, ¾)` over two of the classes; student logits `(0, 0)` give
    /// `p = (½, ½)`. KL(q‖p) = ¼ ln ½ + ¾ ln(3/2), times `T² = 4`; the
    /// gradient is `T (p − q) = 2 (¼, −¼)`.
    #[test]
    fn soft_by_hand() {
        let mut d = Distill::<2, f64, Cpu>::new(&Cpu, 2.0, 0.0).unwrap();
        let s = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[0.0, 0.0]).unwrap();
        let t = Tensor::<S1<2>, f64>::from_slice(&Cpu, &[0.0, 2.0 * 3f64.ln()]).unwrap();
        let mut g = Tensor::empty(&Cpu).unwrap();
        let l = d.soft(&s, &t, Some(&mut g)).unwrap();
        let want = 4.0 * (0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln());
        assert!((l - want).abs() < 1e-14, "{l} vs {want}");
        assert!(rel_err(&g.to_vec().unwrap(), &[0.5, -0.5]) < 1e-13);
        // α = 1 is the plain cross-entropy with the labels: −ln ½, p − onehot.
        let mut hard = Distill::<2, f64, Cpu>::new(&Cpu, 2.0, 1.0).unwrap();
        let y = Labels::<2>::new::<f64>(&Cpu, &[1]).unwrap();
        let l = hard.loss(&s, &t, &y, Some(&mut g)).unwrap();
        assert!((l - 2f64.ln()).abs() < 1e-14, "{l}");
        assert!(rel_err(&g.to_vec().unwrap(), &[0.5, -0.5]) < 1e-13);
        // Identical logits: no divergence at any temperature.
        assert!(d.soft(&t, &t, None).unwrap().abs() < 1e-14);
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(Distill::<3, f64, Cpu>::new(&Cpu, 0.0, 0.5).is_err());
        assert!(Distill::<3, f64, Cpu>::new(&Cpu, f64::NAN, 0.5).is_err());
        assert!(Distill::<3, f64, Cpu>::new(&Cpu, 4.0, 1.5).is_err());
        let mut d = Distill::<3, f64, Cpu>::new(&Cpu, 4.0, 0.5).unwrap();
        let e = d
            .soft(&t3(&[0.0; 6]), &t3(&[0.0; 3]), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("teacher"), "{e}");
    }

    /// The soft term and the whole loss against central differences, at
    /// several temperatures.
    #[test]
    fn gradcheck() {
        let xs: Vec<f64> = (0..12)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.41)
            .collect();
        let ts: Vec<f64> = (0..12)
            .map(|i| ((i * 5 % 13) as f64 - 6.0) * 0.53)
            .collect();
        let teacher = Tensor::<S1<3>, f64>::from_slice(&Cpu, &ts).unwrap();
        let y = Labels::<3>::new::<f64>(&Cpu, &[2, 0, 1, 1]).unwrap();
        for (temp, alpha) in [(1.0, 0.0), (4.0, 0.0), (2.5, 0.3), (8.0, 0.9)] {
            let mut d = Distill::<3, f64, Cpu>::new(&Cpu, temp, alpha).unwrap();
            let mut g = Tensor::empty(&Cpu).unwrap();
            let l = d.loss(&t3(&xs), &teacher, &y, Some(&mut g)).unwrap();
            assert!(l > 0.0);
            let num = numeric_grad(&xs, |v| d.loss(&t3(v), &teacher, &y, None).unwrap());
            let err = rel_err(&g.to_vec().unwrap(), &num);
            assert!(err < 1e-6, "T = {temp}, α = {alpha}: {err}");
        }
    }
}

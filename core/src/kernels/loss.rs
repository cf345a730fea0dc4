//! Loss kernels: each computes the mean loss and, when asked, its gradient
//! in the same pass. Formulas and the CPU bodies are in `crate::loss`.
//!
//! The trait states the kernels (with their formulas) and checks their
//! arguments once for every device; the CPU bodies follow it in this file;
//! the CUDA sources are `cuda/src/kernels/*.cu` and the CUDA impl is in
//! `cuda/src/kernels/<family>.rs`.

use crate::device::{need, Backend, LossKind, LossTarget};
use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::Cpu;

/// The loss kernels (value and gradient in one pass) of a device, for element type `E`.
///
/// Used by the losses of `crate::loss`; a layer that needs them states `D: LossKernels<E>`,
/// so a device without them cannot compile a network that uses it. Layers
/// call the provided methods, which check arguments and lengths once for
/// every device and then call the `raw_` body that the device implements.
#[diagnostic::on_unimplemented(
    message = "device `{Self}` has no loss kernels for `{E}`",
    label = "needed by the losses of crate::loss"
)]
pub trait LossKernels<E: Elem>: Backend<E> {
    /// Computes a per-sample loss and its gradient for `rows` samples of `cols`
    /// values; returns the mean over samples (see [`LossKind`]). `dx` receives
    /// `∂mean/∂x` when given.
    fn loss(
        &self,
        kind: LossKind,
        x: &Self::Buf<E>,
        target: LossTarget<'_, E, Self>,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        need(self, "loss x", x, rows * cols)?;
        match (kind, &target) {
            (
                LossKind::SoftmaxCrossEntropy
                | LossKind::Hinge { .. }
                | LossKind::TokenCrossEntropy { .. },
                LossTarget::Classes(l),
            ) => need(self, "loss labels", *l, rows)?,
            (LossKind::Mse | LossKind::L1 | LossKind::BceWithLogits, LossTarget::Dense(t)) => {
                need(self, "loss target", *t, rows * cols)?
            }
            (k, _) => {
                return Err(Error::invalid(
                    "loss",
                    format!("kiln internal error: {k:?} given the wrong kind of target"),
                ))
            }
        }
        if let Some(d) = &dx {
            need(self, "loss dx", &**d, rows * cols)?;
        }
        if rows * cols == 0 {
            return Err(Error::EmptyBatch { op: "loss" });
        }
        if let LossKind::TokenCrossEntropy { positions, .. } = kind {
            if positions == 0 || positions > rows {
                return Err(Error::invalid(
                    "loss",
                    format!("kiln internal error: {positions} counted positions of {rows} rows"),
                ));
            }
        }
        self.raw_loss(kind, x, target, dx, rows, cols)
    }
    /// Softmax cross-entropy against probability targets, mean over `rows`
    /// samples of `cols` logits: `q = (1 − ε)·t + ε/cols` (label smoothing
    /// `ε = smoothing`; `t` is the one-hot row for [`LossTarget::Classes`]),
    /// loss `−Σ_k q_k log softmax(x)_k`, `dx = (softmax(x)·Σ_k q_k − q) / rows`.
    fn soft_cross_entropy(
        &self,
        x: &Self::Buf<E>,
        target: LossTarget<'_, E, Self>,
        smoothing: f64,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let n = rows * cols;
        need(self, "soft_cross_entropy x", x, n)?;
        match &target {
            LossTarget::Dense(t) => need(self, "soft_cross_entropy target", *t, n)?,
            LossTarget::Classes(y) => need(self, "soft_cross_entropy labels", *y, rows)?,
        }
        if let Some(d) = &dx {
            need(self, "soft_cross_entropy dx", &**d, n)?;
        }
        self.raw_soft_cross_entropy(x, target, smoothing, dx, rows, cols)
    }
    /// Multiclass focal loss, mean over `rows` samples:
    /// `−α_y (1 − p_y)^γ log p_y` with `p = softmax(x)` and `α_y = alpha[y]`
    /// (1 without `alpha`); gradient in `crate::loss::focal_loss`.
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn focal_loss(
        &self,
        x: &Self::Buf<E>,
        labels: &Self::Buf<u32>,
        alpha: Option<&Self::Buf<E>>,
        gamma: f64,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let n = rows * cols;
        need(self, "focal_loss x", x, n)?;
        need(self, "focal_loss labels", labels, rows)?;
        if let Some(a) = alpha {
            need(self, "focal_loss alpha", a, cols)?;
        }
        if let Some(d) = &dx {
            need(self, "focal_loss dx", &**d, n)?;
        }
        self.raw_focal_loss(x, labels, alpha, gamma, dx, rows, cols)
    }
    /// `F.kl_div(x, t, reduction='batchmean')`: `Σ t·(log t − x) / rows`
    /// (`0` where `t = 0`), or with `log_target`, `Σ e^t·(t − x) / rows`;
    /// `dx = −t / rows` (`−e^t / rows`).
    fn kl_div(
        &self,
        x: &Self::Buf<E>,
        target: &Self::Buf<E>,
        log_target: bool,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let n = rows * cols;
        need(self, "kl_div x", x, n)?;
        need(self, "kl_div target", target, n)?;
        if let Some(d) = &dx {
            need(self, "kl_div dx", &**d, n)?;
        }
        self.raw_kl_div(x, target, log_target, dx, rows, cols)
    }
    /// Body of [`LossKernels::loss`] (arguments already checked).
    fn raw_loss(
        &self,
        kind: LossKind,
        x: &Self::Buf<E>,
        target: LossTarget<'_, E, Self>,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E>;
    /// Body of [`LossKernels::soft_cross_entropy`] (arguments already checked).
    fn raw_soft_cross_entropy(
        &self,
        x: &Self::Buf<E>,
        target: LossTarget<'_, E, Self>,
        smoothing: f64,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E>;
    /// Body of [`LossKernels::focal_loss`] (arguments already checked).
    #[allow(clippy::too_many_arguments)] // the operands of the formula above
    fn raw_focal_loss(
        &self,
        x: &Self::Buf<E>,
        labels: &Self::Buf<u32>,
        alpha: Option<&Self::Buf<E>>,
        gamma: f64,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E>;
    /// Body of [`LossKernels::kl_div`] (arguments already checked).
    fn raw_kl_div(
        &self,
        x: &Self::Buf<E>,
        target: &Self::Buf<E>,
        log_target: bool,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E>;
}

// ---- CPU -------------------------------------------------------------------

impl<E: Elem> LossKernels<E> for Cpu {
    fn raw_loss(
        &self,
        kind: LossKind,
        x: &Vec<E>,
        target: LossTarget<'_, E, Self>,
        dx: Option<&mut Vec<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        crate::loss::cpu_loss(kind, &x[..rows * cols], target, dx, rows, cols)
    }
    fn raw_soft_cross_entropy(
        &self,
        x: &Vec<E>,
        target: LossTarget<'_, E, Self>,
        smoothing: f64,
        dx: Option<&mut Vec<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let n = rows * cols;
        crate::loss::distribution::cpu_soft_cross_entropy(
            &x[..n],
            target,
            smoothing,
            dx,
            rows,
            cols,
        )
    }

    fn raw_focal_loss(
        &self,
        x: &Vec<E>,
        labels: &Vec<u32>,
        alpha: Option<&Vec<E>>,
        gamma: f64,
        dx: Option<&mut Vec<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let n = rows * cols;
        crate::loss::distribution::cpu_focal(
            &x[..n],
            labels,
            alpha.map(|a| &a[..]),
            gamma,
            dx,
            rows,
            cols,
        )
    }

    fn raw_kl_div(
        &self,
        x: &Vec<E>,
        target: &Vec<E>,
        log_target: bool,
        dx: Option<&mut Vec<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let n = rows * cols;
        crate::loss::distribution::cpu_kl_div(&x[..n], &target[..n], log_target, dx, rows, cols)
    }
}

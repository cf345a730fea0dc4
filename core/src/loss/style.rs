//! The losses of texture synthesis and style transfer (Gatys et al. 2015,
//! 2016): Gram matrices of feature maps, the style loss that matches them,
//! the content loss that matches the features themselves, and the
//! total-variation smoothness penalty. Re-exported from [`crate::loss`].
//!
//! For one sample's feature map `F` of `C` channels on an `H × W` grid, seen
//! as the `C × N` matrix with `N = H·W` positions:
//!
//! | function | value | gradient |
//! |---|---|---|
//! | [`gram`] | `G = F Fᵀ / N`, i.e. `G_ij = (1/N) Σ_k F_ik F_jk` | [`gram_backward`]: `∂L/∂F = (Ĝ + Ĝᵀ) F / N` for `Ĝ = ∂L/∂G` |
//! | [`StyleTarget::loss`] | `w ‖G(F) − T‖²_F = w Σ_ij (G_ij − T_ij)²` | `∂L/∂F = 4w (G − T) F / N` (`G − T` is symmetric) |
//! | [`ContentTarget::loss`] | `w ‖F − P‖² = w Σ (F − P)²` | `∂L/∂F = 2w (F − P)` |
//! | [`total_variation`] | `w [Σ (x_{c,i,j+1} − x_{c,i,j})² + Σ (x_{c,i+1,j} − x_{c,i,j})²]` | `2w` times each difference, `+` at its later pixel, `−` at its earlier one |
//!
//! **Normalisation.** The Gram matrix is divided by the number of positions
//! `N = H·W` (not by `C·H·W`): its entries are then per-position averages of
//! channel products, the same for a texture and for a larger or smaller crop
//! of it, so a target taken from one image size matches another. The
//! per-layer weight `w` is the caller's; `w = 1/C²` makes a layer's loss the
//! mean squared difference of its Gram entries. Over a batch the losses are
//! summed (each sample is its own image being optimised).
//!
//! Everything runs on the device through [`Backend`] primitives (batched
//! GEMMs, `copy_block`, `axpy`, `sum_sq`), so the same code runs on the CPU
//! and on CUDA. Total variation acts on the image itself, which an optimiser
//! of pixels holds on the host, so it takes slices.

use crate::device::{Acc, Backend, Block, Gemm, GemmBatched};
use crate::elem::Elem;
use crate::error::{check_batch, Error, Result};
use crate::shape::{Shape, S2, S3};
use crate::tensor::Tensor;

fn nonfinite(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::NonFinite {
            what: what.to_string(),
            value: v,
        })
    }
}

/// The batched product `out_b = α A_b op(B_b) + β out_b` of `C × C` or
/// `C × N` blocks per sample, `b < batch`.
#[allow(clippy::too_many_arguments)]
fn per_sample<E: Elem, D: Backend<E>>(
    dev: &D,
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    alpha: f64,
    acc: Acc,
    batch: usize,
    a: &D::Buf<E>,
    b: &D::Buf<E>,
    out: &mut D::Buf<E>,
) -> Result<()> {
    let mut gemm = Gemm::dense(m, n, k, trans_a, trans_b).acc(acc);
    gemm.alpha = alpha;
    dev.gemm_batched(
        &GemmBatched {
            gemm,
            batch,
            stride_a: m * k,
            stride_b: k * n,
            stride_c: m * n,
        },
        a,
        b,
        out,
    )
}

/// Gram matrices `G_b = F_b F_bᵀ / (H·W)` of a batch of feature maps
/// `x: [C, H, W]` into `g: [C, C]` (resized to the batch). See the module
/// doc for the normalisation.
///
/// ```
/// use kiln_core::loss::gram;
/// use kiln_core::{Cpu, Tensor, S3};
/// // Two channels on a 1×2 grid: F = [[1, 2], [3, 4]].
/// let f = Tensor::<S3<2, 1, 2>>::from_slice(&Cpu, &[1.0, 2.0, 3.0, 4.0])?;
/// let mut g = Tensor::empty(&Cpu)?;
/// gram(&f, &mut g)?;
/// // (1·1 + 2·2)/2, (1·3 + 2·4)/2, …
/// assert_eq!(g.to_vec()?, [2.5, 5.5, 5.5, 12.5]);
/// # Ok::<(), kiln_core::Error>(())
/// ```
pub fn gram<const C: usize, const H: usize, const W: usize, E: Elem, D: Backend<E>>(
    x: &Tensor<S3<C, H, W>, E, D>,
    g: &mut Tensor<S2<C, C>, E, D>,
) -> Result<()> {
    let (b, n) = (x.batch(), H * W);
    g.set_batch(b)?;
    per_sample(
        x.device(),
        (C, C, n),
        (false, true),
        1.0 / n as f64,
        Acc::Set,
        b,
        x.buf(),
        x.buf(),
        g.buf_mut(),
    )
}

/// The backward of [`gram`]: from `dg = ∂L/∂G`, writes (or, with
/// `Acc::Add`, adds) `∂L/∂F_b = (dG_b + dG_bᵀ) F_b / (H·W)` into `dx`
/// (resized to the batch). `x` is the forward's input (the gradient of a
/// product needs its factors).
pub fn gram_backward<const C: usize, const H: usize, const W: usize, E: Elem, D: Backend<E>>(
    x: &Tensor<S3<C, H, W>, E, D>,
    dg: &Tensor<S2<C, C>, E, D>,
    dx: &mut Tensor<S3<C, H, W>, E, D>,
    acc: Acc,
) -> Result<()> {
    check_batch("gram_backward", "x", x.batch(), "dg", dg.batch())?;
    let (b, n) = (x.batch(), H * W);
    if acc == Acc::Set {
        dx.set_batch(b)?;
    } else {
        check_batch("gram_backward", "x", b, "dx", dx.batch())?;
    }
    let dev = x.device();
    let s = 1.0 / n as f64;
    // dG·F, then dGᵀ·F added.
    per_sample(
        dev,
        (C, n, C),
        (false, false),
        s,
        acc,
        b,
        dg.buf(),
        x.buf(),
        dx.buf_mut(),
    )?;
    per_sample(
        dev,
        (C, n, C),
        (true, false),
        s,
        Acc::Add,
        b,
        dg.buf(),
        x.buf(),
        dx.buf_mut(),
    )
}

/// The Gram matrix of a style image's features at one layer, and the
/// buffers that [`StyleTarget::loss`] reuses every step (no allocation after
/// the first call at a given batch size).
pub struct StyleTarget<const C: usize, E: Elem, D: Backend<E>> {
    target: Tensor<S2<C, C>, E, D>,
    /// `T − G_b` per sample (the negated difference: one GEMM writes it).
    diff: Tensor<S2<C, C>, E, D>,
}

impl<const C: usize, E: Elem, D: Backend<E>> StyleTarget<C, E, D> {
    /// The target `T = G(F_s)` from the style image's features `features`
    /// (batch 1; any grid size, see the module doc).
    pub fn new<const H: usize, const W: usize>(
        features: &Tensor<S3<C, H, W>, E, D>,
    ) -> Result<Self> {
        if features.batch() != 1 {
            return Err(Error::invalid(
                "StyleTarget::new",
                format!(
                    "the style features must be one sample, got a batch of {}",
                    features.batch()
                ),
            ));
        }
        let mut target = Tensor::empty(features.device())?;
        gram(features, &mut target)?;
        Ok(StyleTarget {
            target,
            diff: Tensor::empty(features.device())?,
        })
    }

    /// The target Gram matrix `T` (`[C, C]`, batch 1).
    pub fn gram(&self) -> &Tensor<S2<C, C>, E, D> {
        &self.target
    }

    /// The style loss `Σ_b w ‖G(F_b) − T‖²_F` of the features `x` (any grid
    /// size); with `grad`, also writes or adds (its [`Acc`]) the gradient
    /// `∂L/∂F_b = 4w (G_b − T) F_b / (H·W)`, which uses that `G_b − T` is
    /// symmetric (so [`gram_backward`]'s `Ĝ + Ĝᵀ` is `2Ĝ`).
    pub fn loss<const H: usize, const W: usize>(
        &mut self,
        x: &Tensor<S3<C, H, W>, E, D>,
        weight: f64,
        grad: Option<(&mut Tensor<S3<C, H, W>, E, D>, Acc)>,
    ) -> Result<f64> {
        let (b, n, dev) = (x.batch(), H * W, x.device());
        if b == 0 {
            return Err(Error::EmptyBatch { op: "style loss" });
        }
        self.diff.set_batch(b)?;
        // diff_b = T (the target broadcast: source stride 0) …
        dev.copy_block(
            &Block {
                rows: b,
                cols: C * C,
                src_ld: 0,
                src_off: 0,
                dst_ld: C * C,
                dst_off: 0,
            },
            self.target.buf(),
            self.diff.buf_mut(),
            Acc::Set,
        )?;
        // … − F_b F_bᵀ / N.
        per_sample(
            dev,
            (C, C, n),
            (false, true),
            -1.0 / n as f64,
            Acc::Add,
            b,
            x.buf(),
            x.buf(),
            self.diff.buf_mut(),
        )?;
        let loss = nonfinite(
            "style loss",
            weight * dev.sum_sq(self.diff.buf(), b * C * C)?,
        )?;
        if let Some((dx, acc)) = grad {
            if acc == Acc::Set {
                dx.set_batch(b)?;
            } else {
                check_batch("style loss", "x", b, "grad", dx.batch())?;
            }
            // 4w (G − T) F / N = −4w/N · diff · F.
            per_sample(
                dev,
                (C, n, C),
                (false, false),
                -4.0 * weight / n as f64,
                acc,
                b,
                self.diff.buf(),
                x.buf(),
                dx.buf_mut(),
            )?;
        }
        Ok(loss)
    }
}

/// A content image's features at one layer, and the buffer that
/// [`ContentTarget::loss`] reuses.
pub struct ContentTarget<S: Shape, E: Elem, D: Backend<E>> {
    target: Tensor<S, E, D>,
    /// `P − F_b` per sample.
    diff: Tensor<S, E, D>,
}

impl<S: Shape, E: Elem, D: Backend<E>> ContentTarget<S, E, D> {
    /// The target `P`: a copy of the content image's features (batch 1).
    pub fn new(features: &Tensor<S, E, D>) -> Result<Self> {
        if features.batch() != 1 {
            return Err(Error::invalid(
                "ContentTarget::new",
                format!(
                    "the content features must be one sample, got a batch of {}",
                    features.batch()
                ),
            ));
        }
        Ok(ContentTarget {
            target: features.try_clone()?,
            diff: Tensor::empty(features.device())?,
        })
    }

    /// The content loss `Σ_b w ‖F_b − P‖²`; with `grad`, also writes or adds
    /// `∂L/∂F_b = 2w (F_b − P)`.
    pub fn loss(
        &mut self,
        x: &Tensor<S, E, D>,
        weight: f64,
        grad: Option<(&mut Tensor<S, E, D>, Acc)>,
    ) -> Result<f64> {
        let (b, dev) = (x.batch(), x.device());
        if b == 0 {
            return Err(Error::EmptyBatch { op: "content loss" });
        }
        self.diff.set_batch(b)?;
        let n = S::NUMEL;
        dev.copy_block(
            &Block {
                rows: b,
                cols: n,
                src_ld: 0,
                src_off: 0,
                dst_ld: n,
                dst_off: 0,
            },
            self.target.buf(),
            self.diff.buf_mut(),
            Acc::Set,
        )?;
        dev.axpy(E::of(-1.0), x.buf(), self.diff.buf_mut(), b * n, Acc::Add)?;
        let loss = nonfinite("content loss", weight * dev.sum_sq(self.diff.buf(), b * n)?)?;
        if let Some((dx, acc)) = grad {
            if acc == Acc::Set {
                dx.set_batch(b)?;
            } else {
                check_batch("content loss", "x", b, "grad", dx.batch())?;
            }
            dev.axpy(
                E::of(-2.0 * weight),
                self.diff.buf(),
                dx.buf_mut(),
                b * n,
                acc,
            )?;
        }
        Ok(loss)
    }
}

/// The (squared, anisotropic) total variation of one image `x` of `dims =
/// [C, H, W]` (row-major), times `weight`:
/// `w [Σ_{c,i,j} (x_{c,i,j+1} − x_{c,i,j})² + Σ_{c,i,j} (x_{c,i+1,j} − x_{c,i,j})²]`.
/// With `grad`, also writes or adds (its [`Acc`]) the gradient: each
/// difference `d = x_later − x_earlier` contributes `2w·d` at the later
/// pixel and `−2w·d` at the earlier one.
///
/// ```
/// use kiln_core::loss::total_variation;
/// // One channel, 1×3: differences 2 and −1.
/// let mut g = [0.0; 3];
/// let v = total_variation(&[1.0, 3.0, 2.0], [1, 1, 3], 1.0, Some((&mut g, kiln_core::Acc::Set)))?;
/// assert_eq!(v, 5.0);
/// assert_eq!(g, [-4.0, 4.0 + 2.0, -2.0]);
/// # Ok::<(), kiln_core::Error>(())
/// ```
pub fn total_variation<E: Elem>(
    x: &[E],
    dims: [usize; 3],
    weight: f64,
    grad: Option<(&mut [E], Acc)>,
) -> Result<f64> {
    let [c, h, w] = dims;
    let n = c * h * w;
    if x.len() != n {
        return Err(Error::LengthMismatch {
            what: "total_variation image".into(),
            expected: n,
            shape: format!("{c}×{h}×{w}"),
            got: x.len(),
        });
    }
    let mut grad = match grad {
        Some((g, acc)) => {
            if g.len() != n {
                return Err(Error::LengthMismatch {
                    what: "total_variation gradient".into(),
                    expected: n,
                    shape: format!("{c}×{h}×{w}"),
                    got: g.len(),
                });
            }
            if acc == Acc::Set {
                g.fill(E::zero());
            }
            Some(g)
        }
        None => None,
    };
    let mut sum = 0.0f64;
    let mut pair = |later: usize, earlier: usize, grad: &mut Option<&mut [E]>| {
        let d = x[later].f64() - x[earlier].f64();
        sum += d * d;
        if let Some(g) = grad.as_deref_mut() {
            let v = 2.0 * weight * d;
            g[later] = E::of(g[later].f64() + v);
            g[earlier] = E::of(g[earlier].f64() - v);
        }
    };
    for ch in 0..c {
        for i in 0..h {
            for j in 0..w {
                let p = (ch * h + i) * w + j;
                if j + 1 < w {
                    pair(p + 1, p, &mut grad);
                }
                if i + 1 < h {
                    pair(p + w, p, &mut grad);
                }
            }
        }
    }
    nonfinite("total variation", weight * sum)
}

#[cfg(test)]
#[path = "style_tests.rs"]
mod tests;

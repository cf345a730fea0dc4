//! [`Cuda`]'s kernels: the `raw_` bodies of `Backend<E>` and of every kernel
//! family of `kiln_core::kernels`. Arguments and lengths were checked by the
//! provided methods of those traits (once for every device); each body builds
//! a launch [`plan`](crate::plan) and runs it.

use crate::device::Opnd;
use crate::kernels::Dtype;
use crate::plan::{self, loss_operands};
use crate::Cuda;
use kiln_core::device::Block;
use kiln_core::device::{
    AdagradArgs, AdamArgs, BatchNormDims, Resize2d, RmspropArgs, SgdArgs, Window2d,
};
use kiln_core::device::{LossKind, LossTarget};
use kiln_core::kernels::{
    BatchNormKernels, ConvKernels, DropoutKernels, EmbeddingKernels, LossKernels, OptimKernels,
    PReluDims, PReluKernels, PoolKernels, SoftmaxKernels, UpsampleKernels,
};
use kiln_core::layers::{LayerNormDims, LayerNormKernels};
use kiln_core::{Acc, Act, Backend, Elem, Error, Gemm, GemmBatched, Result, Scalar};

type Buf<T> = crate::CudaBuf<T>;

/// The kernel dtype of `E`.
fn dtype<E: Elem>() -> Result<Dtype> {
    match (E::NAME, std::mem::size_of::<E>()) {
        ("f32", 4) => Ok(Dtype::F32),
        ("f64", 8) => Ok(Dtype::F64),
        _ => Err(Error::invalid(
            "cuda",
            format!(
                "element type {} has no CUDA kernels (f32 and f64 do)",
                E::NAME
            ),
        )),
    }
}

impl Cuda {
    fn go<E: Elem>(&self, p: &plan::Plan, ops: &[Opnd]) -> Result<()> {
        self.run(dtype::<E>()?, p, ops).map(|_| ())
    }
}

impl<E: Elem> Backend<E> for Cuda {
    fn zeros<T: Scalar>(&self, n: usize) -> Result<Buf<T>> {
        self.alloc(n)
    }
    fn len<T: Scalar>(&self, buf: &Buf<T>) -> usize {
        buf.len()
    }
    fn resize<T: Scalar>(&self, buf: &mut Buf<T>, n: usize) -> Result<()> {
        Cuda::resize(self, buf, n)
    }
    fn upload<T: Scalar>(&self, src: &[T], dst: &mut Buf<T>) -> Result<()> {
        Cuda::upload(self, src, dst)
    }
    fn download<T: Scalar>(&self, src: &Buf<T>, dst: &mut [T]) -> Result<()> {
        Cuda::download(self, src, dst)
    }
    fn raw_copy(&self, src: &Buf<E>, dst: &mut Buf<E>, n: usize) -> Result<()> {
        self.copy_elems(src, dst, n)
    }
    fn raw_fill(&self, dst: &mut Buf<E>, n: usize, v: E) -> Result<()> {
        let d = self.opnd_mut(dst)?;
        self.go::<E>(&plan::fill(n, v.f64()), &[d])
    }

    fn raw_gemm(&self, g: &Gemm, a: &Buf<E>, b: &Buf<E>, c: &mut Buf<E>) -> Result<()> {
        let lens = [a.len(), b.len(), c.len()];
        let (pa, pb, pc) = (self.opnd(a)?, self.opnd(b)?, self.opnd_mut(c)?);
        self.gemm_raw(dtype::<E>()?, g, pa, pb, pc, lens)
    }
    fn raw_gemm_batched(
        &self,
        g: &GemmBatched,
        a: &Buf<E>,
        b: &Buf<E>,
        c: &mut Buf<E>,
    ) -> Result<()> {
        let lens = [a.len(), b.len(), c.len()];
        let (pa, pb, pc) = (self.opnd(a)?, self.opnd(b)?, self.opnd_mut(c)?);
        self.gemm_batched_raw(dtype::<E>()?, g, pa, pb, pc, lens)
    }
    fn raw_add_bias(&self, y: &mut Buf<E>, b: &Buf<E>, rows: usize, cols: usize) -> Result<()> {
        let (pb, py) = (self.opnd(b)?, self.opnd_mut(y)?);
        self.go::<E>(&plan::bias_fwd(rows, cols), &[py, pb])
    }
    fn raw_bias_grad(
        &self,
        dy: &Buf<E>,
        db: &mut Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let (pdy, pdb) = (self.opnd(dy)?, self.opnd_mut(db)?);
        self.go::<E>(&plan::bias_bwd(rows, cols, acc), &[pdy, pdb])
    }

    fn raw_act_fwd(&self, f: Act, x: &Buf<E>, y: &mut Buf<E>, n: usize) -> Result<()> {
        let (px, py) = (self.opnd(x)?, self.opnd_mut(y)?);
        self.go::<E>(&plan::act_fwd(f, n), &[px, py])
    }
    fn raw_act_bwd(
        &self,
        f: Act,
        x: &Buf<E>,
        y: &Buf<E>,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [
            self.opnd(x)?,
            self.opnd(y)?,
            self.opnd(dy)?,
            self.opnd_mut(dx)?,
        ];
        self.go::<E>(&plan::act_bwd(f, n, acc), &ops)
    }
    fn raw_add(&self, a: &Buf<E>, b: &Buf<E>, y: &mut Buf<E>, n: usize) -> Result<()> {
        let ops = [self.opnd(a)?, self.opnd(b)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::add(n), &ops)
    }
    fn raw_axpy(&self, alpha: E, src: &Buf<E>, dst: &mut Buf<E>, n: usize, acc: Acc) -> Result<()> {
        let ops = [self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::axpy(alpha.f64(), n, acc), &ops)
    }
    fn raw_copy_block(&self, b: &Block, src: &Buf<E>, dst: &mut Buf<E>, acc: Acc) -> Result<()> {
        let ops = [self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::copy_block(b, acc), &ops)
    }

    // ---- training toolkit ------------------------------------------------------------

    fn raw_sum_sq(&self, x: &Buf<E>, n: usize) -> Result<f64> {
        self.sum_f64(x, n, false)
    }
    fn raw_sum_abs(&self, x: &Buf<E>, n: usize) -> Result<f64> {
        self.sum_f64(x, n, true)
    }

    // ---- convolution, pooling, dropout ---------------------------------------------------
}

impl Cuda {
    /// The gradient operand of a loss, or a null one.
    fn loss_dx<E: Elem>(&self, dx: Option<&mut Buf<E>>) -> Result<Opnd> {
        match dx {
            Some(d) => self.opnd_mut(d),
            None => Ok(Opnd { addr: 0, esize: 0 }),
        }
    }
    /// Runs a loss plan and returns its mean.
    fn scalar<E: Elem>(&self, p: &plan::Plan, ops: &[Opnd], n: usize) -> Result<E> {
        if n == 0 {
            return Err(Error::EmptyBatch { op: "loss" });
        }
        let v = self.run(dtype::<E>()?, p, ops)?;
        v.map(E::of).ok_or_else(|| {
            Error::invalid(
                "loss",
                "kiln internal error: the loss plan produced no value",
            )
        })
    }
    fn sum_f64<E: Elem>(&self, x: &Buf<E>, n: usize, abs: bool) -> Result<f64> {
        if n == 0 {
            return Ok(0.0);
        }
        let dt = dtype::<E>()?;
        let v = self.run(dt, &plan::sum_sq(n, abs, dt), &[self.opnd(x)?])?;
        v.ok_or_else(|| Error::invalid("sum_sq", "kiln internal error: the plan produced no value"))
    }
}

// ---- conv ----
impl<E: Elem> ConvKernels<E> for Cuda {
    fn raw_im2col(
        &self,
        g: &Window2d,
        x: &Buf<E>,
        first: usize,
        count: usize,
        cols: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(cols)?];
        self.go::<E>(&plan::im2col(g, first, count), &ops)
    }

    fn raw_col2im(
        &self,
        g: &Window2d,
        cols: &Buf<E>,
        x: &mut Buf<E>,
        first: usize,
        count: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(cols)?, self.opnd_mut(x)?];
        self.go::<E>(&plan::col2im(g, first, count, acc), &ops)
    }

    fn raw_transpose01(
        &self,
        src: &Buf<E>,
        src_off: usize,
        dst: &mut Buf<E>,
        dst_off: usize,
        a: usize,
        b: usize,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::transpose01(src_off, dst_off, a, b, n, acc), &ops)
    }

    fn raw_add_channel_bias(
        &self,
        y: &mut Buf<E>,
        bias: &Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
    ) -> Result<()> {
        let (pb, py) = (self.opnd(bias)?, self.opnd_mut(y)?);
        self.go::<E>(&plan::channel_bias_fwd(batch, channels, spatial), &[py, pb])
    }

    fn raw_channel_bias_grad(
        &self,
        dy: &Buf<E>,
        db: &mut Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
        acc: Acc,
    ) -> Result<()> {
        if channels == 0 {
            return Ok(());
        }
        let ops = [self.opnd(dy)?, self.opnd_mut(db)?];
        self.go::<E>(&plan::channel_bias_bwd(batch, channels, spatial, acc), &ops)
    }
}

// ---- pool ----
impl<E: Elem> PoolKernels<E> for Cuda {
    fn raw_max_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Buf<E>,
        y: &mut Buf<E>,
        indices: &mut Buf<u32>,
        batch: usize,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(y)?, self.opnd_mut(indices)?];
        self.go::<E>(&plan::max_pool2d_fwd(g, batch), &ops)
    }

    fn raw_max_unpool2d(
        &self,
        g: &Window2d,
        indices: &Buf<u32>,
        src: &Buf<E>,
        dst: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(indices)?, self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::max_unpool2d(g, batch, acc), &ops)
    }

    fn raw_max_unpool2d_bwd(
        &self,
        g: &Window2d,
        indices: &Buf<u32>,
        src: &Buf<E>,
        dst: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(indices)?, self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::max_unpool2d_bwd(g, batch, acc), &ops)
    }

    fn raw_avg_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Buf<E>,
        y: &mut Buf<E>,
        batch: usize,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::avg_pool2d_fwd(g, batch), &ops)
    }

    fn raw_avg_pool2d_bwd(
        &self,
        g: &Window2d,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&plan::avg_pool2d_bwd(g, batch, acc), &ops)
    }
}

// ---- upsample ----
impl<E: Elem> UpsampleKernels<E> for Cuda {
    fn raw_upsample2d_fwd(
        &self,
        g: &Resize2d,
        x: &Buf<E>,
        y: &mut Buf<E>,
        batch: usize,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::upsample2d_fwd(g, batch), &ops)
    }

    fn raw_upsample2d_bwd(
        &self,
        g: &Resize2d,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&plan::upsample2d_bwd(g, batch, acc), &ops)
    }
}

// ---- batchnorm ----
impl<E: Elem> BatchNormKernels<E> for Cuda {
    fn raw_batch_norm_stats(
        &self,
        d: &BatchNormDims,
        x: &Buf<E>,
        mean: &mut Buf<E>,
        var: &mut Buf<E>,
    ) -> Result<()> {
        if d.channels == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd_mut(mean)?, self.opnd_mut(var)?];
        self.go::<E>(&plan::batch_norm_stats(d), &ops)
    }

    fn raw_batch_norm_running(
        &self,
        d: &BatchNormDims,
        momentum: f64,
        mean: &Buf<E>,
        var: &Buf<E>,
        running_mean: &mut Buf<E>,
        running_var: &mut Buf<E>,
        tracked: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [
            self.opnd(mean)?,
            self.opnd(var)?,
            self.opnd_mut(running_mean)?,
            self.opnd_mut(running_var)?,
            self.opnd_mut(tracked)?,
        ];
        self.go::<E>(&plan::batch_norm_running(d, momentum), &ops)
    }

    fn raw_batch_norm_fwd(
        &self,
        d: &BatchNormDims,
        x: &Buf<E>,
        mean: &Buf<E>,
        var: &Buf<E>,
        gamma: &Buf<E>,
        beta: &Buf<E>,
        y: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [
            self.opnd(x)?,
            self.opnd(mean)?,
            self.opnd(var)?,
            self.opnd(gamma)?,
            self.opnd(beta)?,
            self.opnd_mut(y)?,
        ];
        self.go::<E>(&plan::batch_norm_fwd(d), &ops)
    }

    fn raw_batch_norm_bwd(
        &self,
        d: &BatchNormDims,
        x: &Buf<E>,
        mean: &Buf<E>,
        var: &Buf<E>,
        gamma: &Buf<E>,
        dy: &Buf<E>,
        dx: Option<(&mut Buf<E>, Acc)>,
        dgamma: &mut Buf<E>,
        dbeta: &mut Buf<E>,
        gacc: Acc,
        scratch: &mut Buf<E>,
    ) -> Result<()> {
        let ch = d.channels;
        if ch == 0 {
            return Ok(());
        }
        let (pdx, acc) = match dx {
            Some((b, acc)) => (self.opnd_mut(b)?, Some(acc)),
            None => (Opnd { addr: 0, esize: 0 }, None),
        };
        let ops = [
            self.opnd(x)?,
            self.opnd(mean)?,
            self.opnd(var)?,
            self.opnd(gamma)?,
            self.opnd(dy)?,
            self.opnd_mut(dgamma)?,
            self.opnd_mut(dbeta)?,
            self.opnd_mut(scratch)?,
            pdx,
        ];
        self.go::<E>(&plan::batch_norm_bwd(d, gacc, acc), &ops)
    }
}

// ---- prelu ----
impl<E: Elem> PReluKernels<E> for Cuda {
    fn raw_prelu_fwd(&self, d: &PReluDims, x: &Buf<E>, a: &Buf<E>, y: &mut Buf<E>) -> Result<()> {
        if d.numel() == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd(a)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::prelu_fwd(d), &ops)
    }

    fn raw_prelu_bwd(
        &self,
        d: &PReluDims,
        x: &Buf<E>,
        a: &Buf<E>,
        dy: &Buf<E>,
        dx: Option<(&mut Buf<E>, Acc)>,
        da: &mut Buf<E>,
        gacc: Acc,
    ) -> Result<()> {
        if d.channels == 0 {
            return Ok(());
        }
        let (pdx, acc) = match dx {
            Some((b, acc)) => (self.opnd_mut(b)?, Some(acc)),
            None => (Opnd { addr: 0, esize: 0 }, None),
        };
        let ops = [
            self.opnd(x)?,
            self.opnd(a)?,
            self.opnd(dy)?,
            self.opnd_mut(da)?,
            pdx,
        ];
        self.go::<E>(&plan::prelu_bwd(d, gacc, acc), &ops)
    }
}

// ---- layernorm ----
impl<E: Elem> LayerNormKernels<E> for Cuda {
    fn raw_layer_norm_fwd(
        &self,
        d: &LayerNormDims,
        x: &Buf<E>,
        gamma: Option<&Buf<E>>,
        beta: Option<&Buf<E>>,
        y: &mut Buf<E>,
        stats: &mut Buf<E>,
    ) -> Result<()> {
        if d.rows * d.cols == 0 {
            return Ok(());
        }
        let none = Opnd { addr: 0, esize: 0 };
        let flags = gamma.is_some() as i32 | (beta.is_some() as i32) << 1;
        let ops = [
            self.opnd(x)?,
            gamma.map_or(Ok(none), |g| self.opnd(g))?,
            beta.map_or(Ok(none), |b| self.opnd(b))?,
            self.opnd_mut(y)?,
            self.opnd_mut(stats)?,
        ];
        self.go::<E>(&plan::layer_norm_fwd(d, flags), &ops)
    }

    fn raw_layer_norm_bwd(
        &self,
        d: &LayerNormDims,
        x: &Buf<E>,
        stats: &Buf<E>,
        gamma: Option<&Buf<E>>,
        dy: &Buf<E>,
        dx: Option<(&mut Buf<E>, Acc)>,
        dgamma: Option<&mut Buf<E>>,
        dbeta: Option<&mut Buf<E>>,
        gacc: Acc,
    ) -> Result<()> {
        if d.cols == 0 {
            return Ok(());
        }
        let none = Opnd { addr: 0, esize: 0 };
        let flags =
            dgamma.is_some() as i32 | (dbeta.is_some() as i32) << 1 | (gamma.is_some() as i32) << 2;
        let (pdx, acc) = match dx {
            Some((b, acc)) if d.rows > 0 => (self.opnd_mut(b)?, Some(acc)),
            _ => (none, None),
        };
        let ops = [
            self.opnd(x)?,
            self.opnd(stats)?,
            gamma.map_or(Ok(none), |g| self.opnd(g))?,
            self.opnd(dy)?,
            pdx,
            dgamma.map_or(Ok(none), |g| self.opnd_mut(g))?,
            dbeta.map_or(Ok(none), |b| self.opnd_mut(b))?,
        ];
        self.go::<E>(&plan::layer_norm_bwd(d, flags, gacc, acc), &ops)
    }
}

// ---- dropout ----
impl<E: Elem> DropoutKernels<E> for Cuda {
    fn raw_dropout_fwd(
        &self,
        x: &Buf<E>,
        y: &mut Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::dropout_fwd(n, p, seed), &ops)
    }

    fn raw_dropout_bwd(
        &self,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&plan::dropout_bwd(n, p, seed, acc), &ops)
    }
}

// ---- softmax ----
impl<E: Elem> SoftmaxKernels<E> for Cuda {
    fn raw_softmax_fwd(&self, x: &Buf<E>, y: &mut Buf<E>, rows: usize, cols: usize) -> Result<()> {
        if rows * cols == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::softmax_fwd(rows, cols), &ops)
    }

    fn raw_softmax_bwd(
        &self,
        y: &Buf<E>,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let n = rows * cols;
        if n == 0 {
            return Ok(());
        }
        let ops = [self.opnd(y)?, self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&plan::softmax_bwd(rows, cols, acc), &ops)
    }
}

// ---- embedding ----
impl<E: Elem> EmbeddingKernels<E> for Cuda {
    fn raw_embedding_fwd(
        &self,
        w: &Buf<E>,
        ids: &Buf<u32>,
        y: &mut Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
    ) -> Result<()> {
        let ops = [self.opnd(w)?, self.opnd(ids)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::embedding_fwd(n, vocab, dim), &ops)
    }
    fn raw_embedding_bwd(
        &self,
        ids: &Buf<u32>,
        dy: &Buf<E>,
        dw: &mut Buf<E>,
        n: usize,
        vocab: usize,
        dim: usize,
        padding: Option<usize>,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(ids)?, self.opnd(dy)?, self.opnd_mut(dw)?];
        self.go::<E>(&plan::embedding_bwd(n, vocab, dim, padding, acc), &ops)
    }
}

// ---- loss ----
impl<E: Elem> LossKernels<E> for Cuda {
    fn raw_loss(
        &self,
        kind: LossKind,
        x: &Buf<E>,
        target: LossTarget<'_, E, Self>,
        dx: Option<&mut Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let t = match (kind, target) {
            (
                LossKind::SoftmaxCrossEntropy
                | LossKind::Hinge { .. }
                | LossKind::TokenCrossEntropy { .. },
                LossTarget::Classes(l),
            ) => self.opnd(l)?,
            (LossKind::Mse | LossKind::L1 | LossKind::BceWithLogits, LossTarget::Dense(t)) => {
                self.opnd(t)?
            }
            (k, _) => {
                return Err(Error::invalid(
                    "loss",
                    format!("kiln internal error: {k:?} given the wrong kind of target"),
                ))
            }
        };
        if rows * cols == 0 {
            return Err(Error::EmptyBatch { op: "loss" });
        }
        let with_grad = dx.is_some();
        let pdx = match dx {
            Some(d) => self.opnd_mut(d)?,
            None => Opnd { addr: 0, esize: 0 },
        };
        let mut ops = [Opnd { addr: 0, esize: 0 }; 3];
        ops[loss_operands::X as usize] = self.opnd(x)?;
        ops[loss_operands::TARGET as usize] = t;
        ops[loss_operands::DX as usize] = pdx;
        let p = plan::loss(kind, rows, cols, with_grad);
        let v = self.run(dtype::<E>()?, &p, &ops)?;
        v.map(E::of).ok_or_else(|| {
            Error::invalid(
                "loss",
                "kiln internal error: the loss plan produced no value",
            )
        })
    }

    fn raw_soft_cross_entropy(
        &self,
        x: &Buf<E>,
        target: LossTarget<'_, E, Self>,
        smoothing: f64,
        dx: Option<&mut Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let none = Opnd { addr: 0, esize: 0 };
        let (l, t) = match target {
            LossTarget::Classes(l) => (self.opnd(l)?, none),
            LossTarget::Dense(t) => (none, self.opnd(t)?),
        };
        let p = plan::soft_cross_entropy(rows, cols, smoothing, dx.is_some());
        let pdx = self.loss_dx(dx)?;
        self.scalar::<E>(&p, &[self.opnd(x)?, l, t, pdx], rows * cols)
    }

    fn raw_focal_loss(
        &self,
        x: &Buf<E>,
        labels: &Buf<u32>,
        alpha: Option<&Buf<E>>,
        gamma: f64,
        dx: Option<&mut Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let a = match alpha {
            Some(a) => self.opnd(a)?,
            None => Opnd { addr: 0, esize: 0 },
        };
        let p = plan::focal(rows, cols, gamma, dx.is_some());
        let pdx = self.loss_dx(dx)?;
        self.scalar::<E>(
            &p,
            &[self.opnd(x)?, self.opnd(labels)?, a, pdx],
            rows * cols,
        )
    }

    fn raw_kl_div(
        &self,
        x: &Buf<E>,
        target: &Buf<E>,
        log_target: bool,
        dx: Option<&mut Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        let p = plan::kl_div(rows, cols, log_target, dx.is_some());
        let pdx = self.loss_dx(dx)?;
        self.scalar::<E>(&p, &[self.opnd(x)?, self.opnd(target)?, pdx], rows * cols)
    }
}

// ---- optim ----
impl<E: Elem> OptimKernels<E> for Cuda {
    fn raw_sgd_step(
        &self,
        a: &SgdArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        buf: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        let ops = [self.opnd_mut(p)?, self.opnd(g)?, self.opnd_mut(buf)?];
        self.go::<E>(&plan::sgd(a, n), &ops)
    }

    fn raw_adam_step(
        &self,
        a: &AdamArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        m: &mut Buf<E>,
        v: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        let ops = [
            self.opnd_mut(p)?,
            self.opnd(g)?,
            self.opnd_mut(m)?,
            self.opnd_mut(v)?,
        ];
        self.go::<E>(&plan::adam(a, n), &ops)
    }
    fn raw_adagrad_step(
        &self,
        a: &AdagradArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        sum: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        let ops = [self.opnd_mut(p)?, self.opnd(g)?, self.opnd_mut(sum)?];
        self.go::<E>(&plan::adagrad(a, n), &ops)
    }

    fn raw_rmsprop_step(
        &self,
        a: &RmspropArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        square_avg: &mut Buf<E>,
        grad_avg: &mut Buf<E>,
        buf: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        let ops = [
            self.opnd_mut(p)?,
            self.opnd(g)?,
            self.opnd_mut(square_avg)?,
            self.opnd_mut(grad_avg)?,
            self.opnd_mut(buf)?,
        ];
        self.go::<E>(&plan::rmsprop(a, n), &ops)
    }
    fn raw_penalty_grad(
        &self,
        l1: f64,
        l2: f64,
        theta: &Buf<E>,
        dst: &mut Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(theta)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::penalty_grad(l1, l2, n, acc), &ops)
    }
}

//! `Backend<E>` for [`Cuda`]: each method checks lengths like the CPU device,
//! builds a launch [`plan`](crate::plan) and runs it.

use crate::device::{need, Opnd};
use crate::kernels::Dtype;
use crate::plan::{self, loss_operands};
use crate::Cuda;
use kiln_core::device::{
    AdagradArgs, AdamArgs, BatchNormDims, Resize2d, RmspropArgs, SgdArgs, Window2d,
};
use kiln_core::device::{LossKind, LossTarget};
use kiln_core::{Acc, Act, Backend, Elem, Error, Gemm, Result, Scalar};

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
    fn copy(&self, src: &Buf<E>, dst: &mut Buf<E>, n: usize) -> Result<()> {
        self.copy_elems(src, dst, n)
    }
    fn fill(&self, dst: &mut Buf<E>, n: usize, v: E) -> Result<()> {
        need("fill", dst.len(), n)?;
        let d = self.opnd_mut(dst)?;
        self.go::<E>(&plan::fill(n, v.f64()), &[d])
    }

    fn gemm(&self, g: &Gemm, a: &Buf<E>, b: &Buf<E>, c: &mut Buf<E>) -> Result<()> {
        g.check(a.len(), b.len(), c.len())?;
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        let lens = [a.len(), b.len(), c.len()];
        let (pa, pb, pc) = (self.opnd(a)?, self.opnd(b)?, self.opnd_mut(c)?);
        self.gemm_raw(dtype::<E>()?, g, pa, pb, pc, lens)
    }
    fn add_bias(&self, y: &mut Buf<E>, b: &Buf<E>, rows: usize, cols: usize) -> Result<()> {
        need("add_bias y", y.len(), rows * cols)?;
        need("add_bias b", b.len(), cols)?;
        let (pb, py) = (self.opnd(b)?, self.opnd_mut(y)?);
        self.go::<E>(&plan::bias_fwd(rows, cols), &[py, pb])
    }
    fn bias_grad(
        &self,
        dy: &Buf<E>,
        db: &mut Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        need("bias_grad dy", dy.len(), rows * cols)?;
        need("bias_grad db", db.len(), cols)?;
        let (pdy, pdb) = (self.opnd(dy)?, self.opnd_mut(db)?);
        self.go::<E>(&plan::bias_bwd(rows, cols, acc), &[pdy, pdb])
    }

    fn act_fwd(&self, f: Act, x: &Buf<E>, y: &mut Buf<E>, n: usize) -> Result<()> {
        need("act_fwd x", x.len(), n)?;
        need("act_fwd y", y.len(), n)?;
        let (px, py) = (self.opnd(x)?, self.opnd_mut(y)?);
        self.go::<E>(&plan::act_fwd(f, n), &[px, py])
    }
    fn act_bwd(
        &self,
        f: Act,
        x: &Buf<E>,
        y: &Buf<E>,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need("act_bwd x", x.len(), n)?;
        need("act_bwd y", y.len(), n)?;
        need("act_bwd dy", dy.len(), n)?;
        need("act_bwd dx", dx.len(), n)?;
        let ops = [
            self.opnd(x)?,
            self.opnd(y)?,
            self.opnd(dy)?,
            self.opnd_mut(dx)?,
        ];
        self.go::<E>(&plan::act_bwd(f, n, acc), &ops)
    }
    fn add(&self, a: &Buf<E>, b: &Buf<E>, y: &mut Buf<E>, n: usize) -> Result<()> {
        need("add a", a.len(), n)?;
        need("add b", b.len(), n)?;
        need("add y", y.len(), n)?;
        let ops = [self.opnd(a)?, self.opnd(b)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::add(n), &ops)
    }
    fn axpy(&self, alpha: E, src: &Buf<E>, dst: &mut Buf<E>, n: usize, acc: Acc) -> Result<()> {
        need("axpy src", src.len(), n)?;
        need("axpy dst", dst.len(), n)?;
        let ops = [self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::axpy(alpha.f64(), n, acc), &ops)
    }
    fn copy_block(
        &self,
        src: &Buf<E>,
        src_ld: usize,
        src_off: usize,
        dst: &mut Buf<E>,
        dst_ld: usize,
        dst_off: usize,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Ok(());
        }
        need(
            "copy_block src",
            src.len(),
            (rows - 1) * src_ld + src_off + cols,
        )?;
        need(
            "copy_block dst",
            dst.len(),
            (rows - 1) * dst_ld + dst_off + cols,
        )?;
        let ops = [self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(
            &plan::copy_block(src_ld, src_off, dst_ld, dst_off, rows, cols, acc),
            &ops,
        )
    }

    fn softmax_fwd(&self, x: &Buf<E>, y: &mut Buf<E>, rows: usize, cols: usize) -> Result<()> {
        need("softmax x", x.len(), rows * cols)?;
        need("softmax y", y.len(), rows * cols)?;
        if rows * cols == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::softmax_fwd(rows, cols), &ops)
    }
    fn softmax_bwd(
        &self,
        y: &Buf<E>,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let n = rows * cols;
        need("softmax_bwd y", y.len(), n)?;
        need("softmax_bwd dy", dy.len(), n)?;
        need("softmax_bwd dx", dx.len(), n)?;
        if n == 0 {
            return Ok(());
        }
        let ops = [self.opnd(y)?, self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&plan::softmax_bwd(rows, cols, acc), &ops)
    }
    fn loss(
        &self,
        kind: LossKind,
        x: &Buf<E>,
        target: LossTarget<'_, E, Self>,
        dx: Option<&mut Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        need("loss x", x.len(), rows * cols)?;
        let t = match (kind, target) {
            (LossKind::SoftmaxCrossEntropy | LossKind::Hinge { .. }, LossTarget::Classes(l)) => {
                need("loss labels", l.len(), rows)?;
                self.opnd(l)?
            }
            (LossKind::Mse | LossKind::L1 | LossKind::BceWithLogits, LossTarget::Dense(t)) => {
                need("loss target", t.len(), rows * cols)?;
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
            Some(d) => {
                need("loss dx", d.len(), rows * cols)?;
                self.opnd_mut(d)?
            }
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

    fn sgd_step(
        &self,
        a: &SgdArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        buf: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        need("sgd p", p.len(), n)?;
        need("sgd g", g.len(), n)?;
        if a.momentum != 0.0 {
            need("sgd momentum buffer", buf.len(), n)?;
        }
        let ops = [self.opnd_mut(p)?, self.opnd(g)?, self.opnd_mut(buf)?];
        self.go::<E>(&plan::sgd(a, n), &ops)
    }
    fn adam_step(
        &self,
        a: &AdamArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        m: &mut Buf<E>,
        v: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        need("adam p", p.len(), n)?;
        need("adam g", g.len(), n)?;
        need("adam m", m.len(), n)?;
        need("adam v", v.len(), n)?;
        let ops = [
            self.opnd_mut(p)?,
            self.opnd(g)?,
            self.opnd_mut(m)?,
            self.opnd_mut(v)?,
        ];
        self.go::<E>(&plan::adam(a, n), &ops)
    }

    // ---- training toolkit ------------------------------------------------------------
    fn adagrad_step(
        &self,
        a: &AdagradArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        sum: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        need("adagrad p", p.len(), n)?;
        need("adagrad g", g.len(), n)?;
        need("adagrad sum", sum.len(), n)?;
        let ops = [self.opnd_mut(p)?, self.opnd(g)?, self.opnd_mut(sum)?];
        self.go::<E>(&plan::adagrad(a, n), &ops)
    }
    fn rmsprop_step(
        &self,
        a: &RmspropArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        square_avg: &mut Buf<E>,
        grad_avg: &mut Buf<E>,
        buf: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        need("rmsprop p", p.len(), n)?;
        need("rmsprop g", g.len(), n)?;
        need("rmsprop square_avg", square_avg.len(), n)?;
        if a.centered {
            need("rmsprop grad_avg", grad_avg.len(), n)?;
        }
        if a.momentum > 0.0 {
            need("rmsprop momentum buffer", buf.len(), n)?;
        }
        let ops = [
            self.opnd_mut(p)?,
            self.opnd(g)?,
            self.opnd_mut(square_avg)?,
            self.opnd_mut(grad_avg)?,
            self.opnd_mut(buf)?,
        ];
        self.go::<E>(&plan::rmsprop(a, n), &ops)
    }
    fn sum_sq(&self, x: &Buf<E>, n: usize) -> Result<f64> {
        need("sum_sq x", x.len(), n)?;
        self.sum_f64(x, n, false)
    }
    fn sum_abs(&self, x: &Buf<E>, n: usize) -> Result<f64> {
        need("sum_abs x", x.len(), n)?;
        self.sum_f64(x, n, true)
    }
    fn penalty_grad(
        &self,
        l1: f64,
        l2: f64,
        theta: &Buf<E>,
        dst: &mut Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need("penalty_grad theta", theta.len(), n)?;
        need("penalty_grad dst", dst.len(), n)?;
        let ops = [self.opnd(theta)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::penalty_grad(l1, l2, n, acc), &ops)
    }

    fn soft_cross_entropy(
        &self,
        x: &Buf<E>,
        target: LossTarget<'_, E, Self>,
        smoothing: f64,
        dx: Option<&mut Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        need("soft_cross_entropy x", x.len(), rows * cols)?;
        let none = Opnd { addr: 0, esize: 0 };
        let (l, t) = match target {
            LossTarget::Classes(l) => {
                need("soft_cross_entropy labels", l.len(), rows)?;
                (self.opnd(l)?, none)
            }
            LossTarget::Dense(t) => {
                need("soft_cross_entropy target", t.len(), rows * cols)?;
                (none, self.opnd(t)?)
            }
        };
        let p = plan::soft_cross_entropy(rows, cols, smoothing, dx.is_some());
        let pdx = self.loss_dx(dx, rows * cols)?;
        self.scalar::<E>(&p, &[self.opnd(x)?, l, t, pdx], rows * cols)
    }
    fn focal_loss(
        &self,
        x: &Buf<E>,
        labels: &Buf<u32>,
        alpha: Option<&Buf<E>>,
        gamma: f64,
        dx: Option<&mut Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        need("focal_loss x", x.len(), rows * cols)?;
        need("focal_loss labels", labels.len(), rows)?;
        let a = match alpha {
            Some(a) => {
                need("focal_loss alpha", a.len(), cols)?;
                self.opnd(a)?
            }
            None => Opnd { addr: 0, esize: 0 },
        };
        let p = plan::focal(rows, cols, gamma, dx.is_some());
        let pdx = self.loss_dx(dx, rows * cols)?;
        self.scalar::<E>(
            &p,
            &[self.opnd(x)?, self.opnd(labels)?, a, pdx],
            rows * cols,
        )
    }
    fn kl_div(
        &self,
        x: &Buf<E>,
        target: &Buf<E>,
        log_target: bool,
        dx: Option<&mut Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E> {
        need("kl_div x", x.len(), rows * cols)?;
        need("kl_div target", target.len(), rows * cols)?;
        let p = plan::kl_div(rows, cols, log_target, dx.is_some());
        let pdx = self.loss_dx(dx, rows * cols)?;
        self.scalar::<E>(&p, &[self.opnd(x)?, self.opnd(target)?, pdx], rows * cols)
    }

    // ---- convolution, pooling, dropout ---------------------------------------------------
    fn im2col(
        &self,
        g: &Window2d,
        x: &Buf<E>,
        first: usize,
        count: usize,
        cols: &mut Buf<E>,
    ) -> Result<()> {
        need(
            "im2col x",
            x.len(),
            (first + count) * g.channels * g.in_plane(),
        )?;
        need("im2col cols", cols.len(), g.rows() * count * g.out_plane())?;
        let ops = [self.opnd(x)?, self.opnd_mut(cols)?];
        self.go::<E>(&plan::im2col(g, first, count), &ops)
    }
    fn col2im(
        &self,
        g: &Window2d,
        cols: &Buf<E>,
        x: &mut Buf<E>,
        first: usize,
        count: usize,
        acc: Acc,
    ) -> Result<()> {
        need("col2im cols", cols.len(), g.rows() * count * g.out_plane())?;
        need(
            "col2im x",
            x.len(),
            (first + count) * g.channels * g.in_plane(),
        )?;
        let ops = [self.opnd(cols)?, self.opnd_mut(x)?];
        self.go::<E>(&plan::col2im(g, first, count, acc), &ops)
    }
    fn transpose01(
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
        need("transpose01 src", src.len(), src_off + a * b * n)?;
        need("transpose01 dst", dst.len(), dst_off + a * b * n)?;
        let ops = [self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::transpose01(src_off, dst_off, a, b, n, acc), &ops)
    }
    fn add_channel_bias(
        &self,
        y: &mut Buf<E>,
        bias: &Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
    ) -> Result<()> {
        need("add_channel_bias y", y.len(), batch * channels * spatial)?;
        need("add_channel_bias bias", bias.len(), channels)?;
        let (pb, py) = (self.opnd(bias)?, self.opnd_mut(y)?);
        self.go::<E>(&plan::channel_bias_fwd(batch, channels, spatial), &[py, pb])
    }
    fn channel_bias_grad(
        &self,
        dy: &Buf<E>,
        db: &mut Buf<E>,
        batch: usize,
        channels: usize,
        spatial: usize,
        acc: Acc,
    ) -> Result<()> {
        need("channel_bias_grad dy", dy.len(), batch * channels * spatial)?;
        need("channel_bias_grad db", db.len(), channels)?;
        if channels == 0 {
            return Ok(());
        }
        let ops = [self.opnd(dy)?, self.opnd_mut(db)?];
        self.go::<E>(&plan::channel_bias_bwd(batch, channels, spatial, acc), &ops)
    }
    fn max_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Buf<E>,
        y: &mut Buf<E>,
        indices: &mut Buf<u32>,
        batch: usize,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need("max_pool2d x", x.len(), planes * g.in_plane())?;
        need("max_pool2d y", y.len(), planes * g.out_plane())?;
        need("max_pool2d indices", indices.len(), planes * g.out_plane())?;
        let ops = [self.opnd(x)?, self.opnd_mut(y)?, self.opnd_mut(indices)?];
        self.go::<E>(&plan::max_pool2d_fwd(g, batch), &ops)
    }
    fn max_unpool2d(
        &self,
        g: &Window2d,
        indices: &Buf<u32>,
        src: &Buf<E>,
        dst: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need(
            "max_unpool2d indices",
            indices.len(),
            planes * g.out_plane(),
        )?;
        need("max_unpool2d src", src.len(), planes * g.out_plane())?;
        need("max_unpool2d dst", dst.len(), planes * g.in_plane())?;
        let ops = [self.opnd(indices)?, self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::max_unpool2d(g, batch, acc), &ops)
    }
    fn max_unpool2d_bwd(
        &self,
        g: &Window2d,
        indices: &Buf<u32>,
        src: &Buf<E>,
        dst: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need(
            "max_unpool2d_bwd indices",
            indices.len(),
            planes * g.out_plane(),
        )?;
        need("max_unpool2d_bwd src", src.len(), planes * g.in_plane())?;
        need("max_unpool2d_bwd dst", dst.len(), planes * g.out_plane())?;
        let ops = [self.opnd(indices)?, self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&plan::max_unpool2d_bwd(g, batch, acc), &ops)
    }
    fn avg_pool2d_fwd(&self, g: &Window2d, x: &Buf<E>, y: &mut Buf<E>, batch: usize) -> Result<()> {
        let planes = batch * g.channels;
        need("avg_pool2d x", x.len(), planes * g.in_plane())?;
        need("avg_pool2d y", y.len(), planes * g.out_plane())?;
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::avg_pool2d_fwd(g, batch), &ops)
    }
    fn avg_pool2d_bwd(
        &self,
        g: &Window2d,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need("avg_pool2d_bwd dy", dy.len(), planes * g.out_plane())?;
        need("avg_pool2d_bwd dx", dx.len(), planes * g.in_plane())?;
        let ops = [self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&plan::avg_pool2d_bwd(g, batch, acc), &ops)
    }
    fn upsample2d_fwd(&self, g: &Resize2d, x: &Buf<E>, y: &mut Buf<E>, batch: usize) -> Result<()> {
        let planes = batch * g.channels;
        need("upsample2d x", x.len(), planes * g.h * g.w)?;
        need("upsample2d y", y.len(), planes * g.oh * g.ow)?;
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::upsample2d_fwd(g, batch), &ops)
    }
    fn upsample2d_bwd(
        &self,
        g: &Resize2d,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let planes = batch * g.channels;
        need("upsample2d_bwd dy", dy.len(), planes * g.oh * g.ow)?;
        need("upsample2d_bwd dx", dx.len(), planes * g.h * g.w)?;
        let ops = [self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&plan::upsample2d_bwd(g, batch, acc), &ops)
    }
    fn batch_norm_stats(
        &self,
        d: &BatchNormDims,
        x: &Buf<E>,
        mean: &mut Buf<E>,
        var: &mut Buf<E>,
    ) -> Result<()> {
        need(
            "batch_norm_stats x",
            x.len(),
            d.batch * d.channels * d.spatial,
        )?;
        need("batch_norm_stats mean", mean.len(), d.channels)?;
        need("batch_norm_stats var", var.len(), d.channels)?;
        if d.channels == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd_mut(mean)?, self.opnd_mut(var)?];
        self.go::<E>(&plan::batch_norm_stats(d), &ops)
    }
    fn batch_norm_running(
        &self,
        d: &BatchNormDims,
        momentum: f64,
        mean: &Buf<E>,
        var: &Buf<E>,
        running_mean: &mut Buf<E>,
        running_var: &mut Buf<E>,
        tracked: &mut Buf<E>,
    ) -> Result<()> {
        for (what, b) in [
            ("batch_norm_running mean", mean.len()),
            ("batch_norm_running var", var.len()),
        ] {
            need(what, b, d.channels)?;
        }
        need(
            "batch_norm_running running_mean",
            running_mean.len(),
            d.channels,
        )?;
        need(
            "batch_norm_running running_var",
            running_var.len(),
            d.channels,
        )?;
        need("batch_norm_running num_batches_tracked", tracked.len(), 1)?;
        let ops = [
            self.opnd(mean)?,
            self.opnd(var)?,
            self.opnd_mut(running_mean)?,
            self.opnd_mut(running_var)?,
            self.opnd_mut(tracked)?,
        ];
        self.go::<E>(&plan::batch_norm_running(d, momentum), &ops)
    }
    fn batch_norm_fwd(
        &self,
        d: &BatchNormDims,
        x: &Buf<E>,
        mean: &Buf<E>,
        var: &Buf<E>,
        gamma: &Buf<E>,
        beta: &Buf<E>,
        y: &mut Buf<E>,
    ) -> Result<()> {
        let n = d.batch * d.channels * d.spatial;
        need("batch_norm_fwd x", x.len(), n)?;
        need("batch_norm_fwd y", y.len(), n)?;
        for (what, b) in [
            ("batch_norm_fwd mean", mean.len()),
            ("batch_norm_fwd var", var.len()),
            ("batch_norm_fwd gamma", gamma.len()),
            ("batch_norm_fwd beta", beta.len()),
        ] {
            need(what, b, d.channels)?;
        }
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
    fn batch_norm_bwd(
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
        let (n, ch) = (d.batch * d.channels * d.spatial, d.channels);
        need("batch_norm_bwd x", x.len(), n)?;
        need("batch_norm_bwd dy", dy.len(), n)?;
        need("batch_norm_bwd scratch", scratch.len(), 2 * ch)?;
        for (what, b) in [
            ("batch_norm_bwd mean", mean.len()),
            ("batch_norm_bwd var", var.len()),
            ("batch_norm_bwd gamma", gamma.len()),
        ] {
            need(what, b, ch)?;
        }
        need("batch_norm_bwd dgamma", dgamma.len(), ch)?;
        need("batch_norm_bwd dbeta", dbeta.len(), ch)?;
        if ch == 0 {
            return Ok(());
        }
        let (pdx, acc) = match dx {
            Some((b, acc)) => {
                need("batch_norm_bwd dx", b.len(), n)?;
                (self.opnd_mut(b)?, Some(acc))
            }
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
    fn dropout_fwd(&self, x: &Buf<E>, y: &mut Buf<E>, n: usize, p: f64, seed: u64) -> Result<()> {
        need("dropout x", x.len(), n)?;
        need("dropout y", y.len(), n)?;
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&plan::dropout_fwd(n, p, seed), &ops)
    }
    fn dropout_bwd(
        &self,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        n: usize,
        p: f64,
        seed: u64,
        acc: Acc,
    ) -> Result<()> {
        need("dropout_bwd dy", dy.len(), n)?;
        need("dropout_bwd dx", dx.len(), n)?;
        let ops = [self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&plan::dropout_bwd(n, p, seed, acc), &ops)
    }
}

impl Cuda {
    /// The gradient operand of a loss (checked), or a null one.
    fn loss_dx<E: Elem>(&self, dx: Option<&mut Buf<E>>, n: usize) -> Result<Opnd> {
        match dx {
            Some(d) => {
                need("loss dx", d.len(), n)?;
                self.opnd_mut(d)
            }
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

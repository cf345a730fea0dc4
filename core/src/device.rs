//! The device abstraction.
//!
//! A [`Device`] owns memory ([`Device::Buf`]); [`Backend<E>`] is the set of
//! kernels that layers, losses and optimizers call. Layers are written once,
//! generically over `D: Backend<E>`, so a second device (CUDA) implements this
//! trait and nothing at the call sites of layers or of generated code changes.
//!
//! Every kernel works on whole buffers or on explicitly described sub-matrices;
//! all matrices are row-major like PyTorch's. Gradient-writing kernels take an
//! [`Acc`]: overwrite the destination (first contribution) or add to it (fan-out
//! in a graph, a weight used twice). The macro knows statically which
//! contribution comes first, so no buffer is ever zeroed just to be added to.

use crate::elem::{Elem, Scalar};
use crate::error::{Error, Result};
pub use crate::gemm::PackedB;
use std::fmt::Debug;

/// Overwrite or accumulate into a gradient buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acc {
    /// `dst = value` (the first contribution).
    Set,
    /// `dst += value` (a later contribution).
    Add,
}

impl Acc {
    /// Writes `v` into `dst` according to the mode (the CPU's one accumulate helper).
    #[inline(always)]
    pub fn put<E: Elem>(self, dst: &mut E, v: E) {
        match self {
            Acc::Set => *dst = v,
            Acc::Add => *dst = *dst + v,
        }
    }
    /// GEMM's β: 0 for `Set`, 1 for `Add`.
    pub fn beta<E: Elem>(self) -> E {
        match self {
            Acc::Set => E::zero(),
            Acc::Add => E::one(),
        }
    }
}

/// A place where buffers live.
pub trait Device: Clone + Debug + Send + Sync + 'static {
    /// A buffer of `T`s on this device.
    type Buf<T: Scalar>: Debug + Send + Sync;
    /// A human-readable name (`cpu`, `cuda:0`).
    fn name(&self) -> String;
}

pub use crate::kernels::unary::Act;

mod args;
mod gemm;
pub use args::{
    dropout_keep, dropout_threshold, transposed_out_size, window_out_size, AdagradArgs, AdamArgs,
    BatchNormDims, Block, LossKind, LossTarget, Resize2d, RmspropArgs, SgdArgs, UpsampleMode,
    Window2d,
};
pub use gemm::{Gemm, GemmBatched};

/// Fails unless `buf` holds at least `n` elements: the length check that every
/// kernel's entry point makes, once for all devices, before the device's
/// `raw_` body runs.
#[inline]
pub fn need<E: Elem, D: Backend<E>, T: Scalar>(
    dev: &D,
    what: &'static str,
    buf: &D::Buf<T>,
    n: usize,
) -> Result<()> {
    let have = Backend::<E>::len(dev, buf);
    if have < n {
        Err(Error::invalid(
            what,
            format!("kiln internal error: buffer holds {have} elements, kernel needs {n}"),
        ))
    } else {
        Ok(())
    }
}

/// The core of a device for element type `E`: memory, transfers, matrix
/// products, element-wise maps and reductions. What only some layers need
/// (convolution, pooling, normalisation, losses, optimizer updates) lives in
/// the kernel families of [`crate::kernels`], each a trait of its own that the
/// layers using it state as a bound, so a device that lacks a kernel a network
/// needs is a compile error, never a run-time failure.
///
/// Each kernel comes in two halves. The provided method (`gemm`, `act_fwd`, …)
/// is what layers call: it checks arguments and buffer lengths, once for every
/// device, then calls the required `raw_` method, which a device implements and
/// which may assume those checks passed. Devices do not override the provided
/// methods.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a kiln device for element type `{E}`",
    label = "a network's device must implement `kiln::Backend<{E}>`"
)]
pub trait Backend<E: Elem>: Device {
    // ---- memory ---------------------------------------------------------------
    /// A zero-filled buffer of `n` elements.
    fn zeros<T: Scalar>(&self, n: usize) -> Result<Self::Buf<T>>;
    /// Number of elements in `buf`.
    fn len<T: Scalar>(&self, buf: &Self::Buf<T>) -> usize;
    /// Sets `buf`'s length to `n`, keeping capacity (no allocation when shrinking
    /// or regrowing within what was allocated before). New elements are zero.
    fn resize<T: Scalar>(&self, buf: &mut Self::Buf<T>, n: usize) -> Result<()>;
    /// Copies host data into `dst` (whose length must be at least `src.len()`).
    fn upload<T: Scalar>(&self, src: &[T], dst: &mut Self::Buf<T>) -> Result<()>;
    /// Copies the first `dst.len()` elements of `src` to the host.
    fn download<T: Scalar>(&self, src: &Self::Buf<T>, dst: &mut [T]) -> Result<()>;

    // ---- checked entry points (provided; layers call these) ---------------------
    /// `dst[..n] = src[..n]`.
    fn copy(&self, src: &Self::Buf<E>, dst: &mut Self::Buf<E>, n: usize) -> Result<()> {
        need(self, "copy src", src, n)?;
        need(self, "copy dst", dst, n)?;
        self.raw_copy(src, dst, n)
    }
    /// `dst[..n] = v`.
    fn fill(&self, dst: &mut Self::Buf<E>, n: usize, v: E) -> Result<()> {
        need(self, "fill", dst, n)?;
        self.raw_fill(dst, n, v)
    }
    /// `C = α·op(A)·op(B) + β·C` on sub-matrices (see [`Gemm`]); leading
    /// dimensions and lengths are checked by [`Gemm::check`].
    fn gemm(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()> {
        g.check(self.len(a), self.len(b), self.len(c))?;
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        self.raw_gemm(g, a, b, c)
    }
    /// `batch` products `C_i = α·op(A_i)·op(B_i) + β·C_i` at strided offsets
    /// (see [`GemmBatched`]); checked once by [`GemmBatched::check`].
    fn gemm_batched(
        &self,
        g: &GemmBatched,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()> {
        g.check(self.len(a), self.len(b), self.len(c))?;
        if g.batch == 0 || g.gemm.m == 0 || g.gemm.n == 0 {
            return Ok(());
        }
        self.raw_gemm_batched(g, a, b, c)
    }
    /// Packs `op(B)` of products shaped like `g` (its `k`, `n`, `trans_b`,
    /// `b_off`, `ldb`) into `packed` for [`Backend::gemm_packed_b`], so a
    /// weight used by many products in a row (a recurrent `W_hh`) is packed
    /// once; repacking the same size allocates nothing.
    fn pack_gemm_b(&self, g: &Gemm, b: &Self::Buf<E>, packed: &mut PackedB<E>) -> Result<()> {
        Gemm {
            m: 0,
            a_off: 0,
            c_off: 0,
            ..*g
        }
        .check(0, self.len(b), 0)?;
        self.raw_pack_gemm_b(g, b, packed)
    }
    /// [`Backend::gemm`] with `B` read from `packed`, filled by
    /// [`Backend::pack_gemm_b`] from this `b` (same buffer, offset, stride,
    /// transpose, size; unmodified since), else an error. The same result
    /// (bitwise on the CPU but for its one-row and tiny dot-product paths).
    fn gemm_packed_b(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        packed: &PackedB<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()> {
        g.check(self.len(a), self.len(b), self.len(c))?;
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        self.raw_gemm_packed_b(g, a, b, packed, c)
    }
    /// `y[r, c] += b[c]` for a `rows × cols` matrix `y`.
    fn add_bias(
        &self,
        y: &mut Self::Buf<E>,
        b: &Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need(self, "add_bias y", y, rows * cols)?;
        need(self, "add_bias b", b, cols)?;
        self.raw_add_bias(y, b, rows, cols)
    }
    /// `db[c] (acc)= Σ_r dy[r, c]`, summed in row order.
    fn bias_grad(
        &self,
        dy: &Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "bias_grad dy", dy, rows * cols)?;
        need(self, "bias_grad db", db, cols)?;
        self.raw_bias_grad(dy, db, rows, cols, acc)
    }
    /// A dense layer's product and epilogue in one call: `C = op(A)·op(B)`
    /// as [`Backend::gemm`] (with `C` dense: `c_off = 0`, `ldc = n`), then
    /// `C[r, j] += bias[j]` with a bias, then `y = f(C)` with a function
    /// (`C` keeps the pre-activation, which the backward pass reads).
    /// The values are those of `gemm`, `add_bias` and `act_fwd` in turn; the
    /// CPU applies the epilogue to each tile of `C` right after the tile's
    /// last product, the CUDA device in one kernel after the product.
    fn gemm_bias_act(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
        bias: Option<&Self::Buf<E>>,
        act: Option<(Act, &mut Self::Buf<E>)>,
    ) -> Result<()> {
        g.check(self.len(a), self.len(b), self.len(c))?;
        if g.c_off != 0 || g.ldc != g.n {
            return Err(crate::error::Error::invalid(
                "gemm_bias_act",
                format!(
                    "kiln internal error: the epilogue needs a dense C (offset 0, row stride n = {}), got offset {} and row stride {}",
                    g.n, g.c_off, g.ldc
                ),
            ));
        }
        if let Some(bias) = bias {
            need(self, "gemm_bias_act bias", bias, g.n)?;
        }
        if let Some((_, y)) = &act {
            need(self, "gemm_bias_act y", y, g.m * g.n)?;
        }
        if g.m == 0 || g.n == 0 {
            return Ok(());
        }
        self.raw_gemm_bias_act(g, a, b, c, bias, act)
    }
    /// The backward of [`Backend::gemm_bias_act`]'s epilogue with a bias:
    /// `dx = dy · f'(x or y)` over the `rows × cols` pre-activation `x` (as
    /// `act_bwd` with `Acc::Set`), and `db[c] (acc)= Σ_r dx[r, c]` (as
    /// `bias_grad`, in row order).
    #[allow(clippy::too_many_arguments)] // the five tensors of the formula and the shape
    fn bias_act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let n = rows * cols;
        need(self, "bias_act_bwd x", x, n)?;
        need(self, "bias_act_bwd y", y, n)?;
        need(self, "bias_act_bwd dy", dy, n)?;
        need(self, "bias_act_bwd dx", dx, n)?;
        need(self, "bias_act_bwd db", db, cols)?;
        self.raw_bias_act_bwd(f, x, y, dy, dx, db, rows, cols, acc)
    }
    /// `y = f(x)` over `n` elements (`f` from the table in
    /// [`crate::kernels::unary`]).
    fn act_fwd(&self, f: Act, x: &Self::Buf<E>, y: &mut Self::Buf<E>, n: usize) -> Result<()> {
        need(self, "act_fwd x", x, n)?;
        need(self, "act_fwd y", y, n)?;
        self.raw_act_fwd(f, x, y, n)
    }
    /// `dx (acc)= dy · f'(x)`, `f'` reading `x` or `y` as its table entry says.
    #[allow(clippy::too_many_arguments)] // x, y, dy, dx: the four tensors of the formula
    fn act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "act_bwd x", x, n)?;
        need(self, "act_bwd y", y, n)?;
        need(self, "act_bwd dy", dy, n)?;
        need(self, "act_bwd dx", dx, n)?;
        self.raw_act_bwd(f, x, y, dy, dx, n, acc)
    }
    /// `y = a + b` over `n` elements.
    fn add(
        &self,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()> {
        need(self, "add a", a, n)?;
        need(self, "add b", b, n)?;
        need(self, "add y", y, n)?;
        self.raw_add(a, b, y, n)
    }
    /// `dst (acc)= α · src` over `n` elements.
    fn axpy(
        &self,
        alpha: E,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        need(self, "axpy src", src, n)?;
        need(self, "axpy dst", dst, n)?;
        self.raw_axpy(alpha, src, dst, n, acc)
    }
    /// Strided block copy: for each of `b.rows` rows, `dst[r·dst_ld + dst_off + j]
    /// (acc)= src[r·src_ld + src_off + j]` for `j < b.cols` (concatenation and
    /// its backward).
    fn copy_block(
        &self,
        b: &Block,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        acc: Acc,
    ) -> Result<()> {
        if b.rows == 0 || b.cols == 0 {
            return Ok(());
        }
        need(
            self,
            "copy_block src",
            src,
            (b.rows - 1) * b.src_ld + b.src_off + b.cols,
        )?;
        need(
            self,
            "copy_block dst",
            dst,
            (b.rows - 1) * b.dst_ld + b.dst_off + b.cols,
        )?;
        self.raw_copy_block(b, src, dst, acc)
    }
    /// `Σ_{i<n} x_i²`, accumulated in `f64` in an order that depends only on
    /// `n` (gradient norms for clipping, the L2 penalty).
    fn sum_sq(&self, x: &Self::Buf<E>, n: usize) -> Result<f64> {
        need(self, "sum_sq x", x, n)?;
        self.raw_sum_sq(x, n)
    }
    /// `Σ_{i<n} |x_i|`, accumulated like [`Backend::sum_sq`] (the L1 penalty).
    fn sum_abs(&self, x: &Self::Buf<E>, n: usize) -> Result<f64> {
        need(self, "sum_abs x", x, n)?;
        self.raw_sum_abs(x, n)
    }

    // ---- the device's bodies (required; called only by the methods above) -------
    /// Body of [`Backend::copy`].
    fn raw_copy(&self, src: &Self::Buf<E>, dst: &mut Self::Buf<E>, n: usize) -> Result<()>;
    /// Body of [`Backend::fill`].
    fn raw_fill(&self, dst: &mut Self::Buf<E>, n: usize, v: E) -> Result<()>;
    /// Body of [`Backend::gemm`] (`m, n > 0`, checked by [`Gemm::check`]).
    fn raw_gemm(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`Backend::gemm_batched`] (`batch, m, n > 0`, checked by
    /// [`GemmBatched::check`]).
    fn raw_gemm_batched(
        &self,
        g: &GemmBatched,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()>;
    /// Body of [`Backend::pack_gemm_b`]; by default packs nothing (cuBLAS).
    fn raw_pack_gemm_b(&self, g: &Gemm, b: &Self::Buf<E>, packed: &mut PackedB<E>) -> Result<()> {
        let _ = (g, b);
        packed.clear();
        Ok(())
    }
    /// Body of [`Backend::gemm_packed_b`]; by default [`Backend::raw_gemm`].
    fn raw_gemm_packed_b(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        packed: &PackedB<E>,
        c: &mut Self::Buf<E>,
    ) -> Result<()> {
        let _ = packed;
        self.raw_gemm(g, a, b, c)
    }
    /// Body of [`Backend::add_bias`].
    fn raw_add_bias(
        &self,
        y: &mut Self::Buf<E>,
        b: &Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// Body of [`Backend::bias_grad`].
    fn raw_bias_grad(
        &self,
        dy: &Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`Backend::act_fwd`].
    fn raw_act_fwd(&self, f: Act, x: &Self::Buf<E>, y: &mut Self::Buf<E>, n: usize) -> Result<()>;
    /// [`Backend::gemm_bias_act`] after its checks. By default the product,
    /// then [`Backend::raw_bias_act_fwd`] (or `add_bias`, or `act_fwd`).
    fn raw_gemm_bias_act(
        &self,
        g: &Gemm,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        c: &mut Self::Buf<E>,
        bias: Option<&Self::Buf<E>>,
        act: Option<(Act, &mut Self::Buf<E>)>,
    ) -> Result<()> {
        self.raw_gemm(g, a, b, c)?;
        match (bias, act) {
            (Some(bias), Some((f, y))) => self.raw_bias_act_fwd(f, c, bias, y, g.m, g.n),
            (Some(bias), None) => self.raw_add_bias(c, bias, g.m, g.n),
            (None, Some((f, y))) => self.raw_act_fwd(f, c, y, g.m * g.n),
            (None, None) => Ok(()),
        }
    }
    /// `x[r, c] += b[c]`, then `y = f(x)`, over a `rows × cols` matrix. By
    /// default `add_bias` then `act_fwd`; a device may do it in one pass.
    fn raw_bias_act_fwd(
        &self,
        f: Act,
        x: &mut Self::Buf<E>,
        b: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        self.raw_add_bias(x, b, rows, cols)?;
        self.raw_act_fwd(f, x, y, rows * cols)
    }
    /// [`Backend::bias_act_bwd`] after its checks. By default `act_bwd`
    /// then `bias_grad` (two passes); a device may do it in one.
    #[allow(clippy::too_many_arguments)] // as `bias_act_bwd`
    fn raw_bias_act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        self.raw_act_bwd(f, x, y, dy, dx, rows * cols, Acc::Set)?;
        self.raw_bias_grad(dx, db, rows, cols, acc)
    }
    /// Body of [`Backend::act_bwd`].
    #[allow(clippy::too_many_arguments)] // x, y, dy, dx: the four tensors of the formula
    fn raw_act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`Backend::add`].
    fn raw_add(
        &self,
        a: &Self::Buf<E>,
        b: &Self::Buf<E>,
        y: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;
    /// Body of [`Backend::axpy`].
    fn raw_axpy(
        &self,
        alpha: E,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`Backend::copy_block`] (non-empty block).
    fn raw_copy_block(
        &self,
        b: &Block,
        src: &Self::Buf<E>,
        dst: &mut Self::Buf<E>,
        acc: Acc,
    ) -> Result<()>;
    /// Body of [`Backend::sum_sq`].
    fn raw_sum_sq(&self, x: &Self::Buf<E>, n: usize) -> Result<f64>;
    /// Body of [`Backend::sum_abs`].
    fn raw_sum_abs(&self, x: &Self::Buf<E>, n: usize) -> Result<f64>;
}

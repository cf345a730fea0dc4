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
use crate::error::Result;
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
    /// `Set` for the first contribution, `Add` after it.
    pub fn first(is_first: bool) -> Self {
        if is_first {
            Acc::Set
        } else {
            Acc::Add
        }
    }
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

/// Element-wise activation functions. One enum shared by every device, so
/// each function's formula is declared once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `max(x, 0)`; backward `dy · [x > 0]`.
    Relu,
    /// `x` if `x > 0` else `αx`; backward `dy · (1 if x > 0 else α)`.
    LeakyRelu(f64),
    /// `σ(x) = 1/(1+e^{−x})`; backward `dy · y(1 − y)` (uses the output).
    Sigmoid,
    /// `tanh x`; backward `dy · (1 − y²)` (uses the output).
    Tanh,
}

/// A matrix product on sub-matrices of row-major buffers:
/// `C = α · op(A) · op(B) + β · C` with `op(A)` of size `m × k`, `op(B)` of size
/// `k × n`, `C` of size `m × n`. `lda`, `ldb`, `ldc` are row strides (elements
/// between consecutive rows of the stored, untransposed matrix) and the offsets
/// locate the first element.
#[allow(missing_docs)] // BLAS's and torch.optim's names, documented above
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub a_off: usize,
    pub lda: usize,
    pub b_off: usize,
    pub ldb: usize,
    pub c_off: usize,
    pub ldc: usize,
    pub alpha: f64,
    pub beta: f64,
}

impl Gemm {
    /// A dense product `C[m×n] = op(A)·op(B)` with contiguous operands (β = 0).
    pub fn dense(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        Gemm {
            m,
            n,
            k,
            trans_a,
            trans_b,
            a_off: 0,
            lda: if trans_a { m } else { k },
            b_off: 0,
            ldb: if trans_b { k } else { n },
            c_off: 0,
            ldc: n,
            alpha: 1.0,
            beta: 0.0,
        }
    }
    /// The same product accumulating into `C` according to `acc`.
    pub fn acc(mut self, acc: Acc) -> Self {
        self.beta = if acc == Acc::Add { 1.0 } else { 0.0 };
        self
    }
}

/// Hyper-parameters of one SGD step on one parameter (PyTorch's `torch.optim.SGD`).
#[allow(missing_docs)] // BLAS's and torch.optim's names, documented above
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdArgs {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// True on the first step, when the momentum buffer is initialised to the gradient.
    pub first: bool,
}

/// Hyper-parameters of one Adam/AdamW step on one parameter (`torch.optim.Adam`).
#[allow(missing_docs)] // BLAS's and torch.optim's names, documented above
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamArgs {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW) instead of L2 added to the gradient (Adam).
    pub decoupled: bool,
    /// The step number, starting at 1 (for the bias corrections).
    pub step: u64,
}

/// The kernels of a device for element type `E`.
///
/// Lengths are checked by the callers (layers know their shapes); kernels may
/// assume that buffers are at least as long as the sizes they are given.
pub trait Backend<E: Elem>: Device {
    // ---- memory ---------------------------------------------------------------
    /// A zero-filled buffer of `n` elements.
    fn zeros<T: Scalar>(&self, n: usize) -> Result<Self::Buf<T>>;
    /// Number of elements in `buf`.
    fn len<T: Scalar>(&self, buf: &Self::Buf<T>) -> usize;
    /// Sets `buf`'s length to `n`, keeping capacity (no allocation when shrinking
    /// or regrowing within what was allocated before). New elements are zero.
    fn resize<T: Scalar>(&self, buf: &mut Self::Buf<T>, n: usize) -> Result<()>;
    /// Copies host data into `dst` (whose length must equal `src.len()`).
    fn upload<T: Scalar>(&self, src: &[T], dst: &mut Self::Buf<T>) -> Result<()>;
    /// Copies `src` to the host.
    fn download<T: Scalar>(&self, src: &Self::Buf<T>, dst: &mut [T]) -> Result<()>;
    /// `dst[..n] = src[..n]`.
    fn copy(&self, src: &Self::Buf<E>, dst: &mut Self::Buf<E>, n: usize) -> Result<()>;
    /// `dst[..n] = v`.
    fn fill(&self, dst: &mut Self::Buf<E>, n: usize, v: E) -> Result<()>;

    // ---- linear algebra ---------------------------------------------------------
    /// See [`Gemm`].
    fn gemm(&self, g: &Gemm, a: &Self::Buf<E>, b: &Self::Buf<E>, c: &mut Self::Buf<E>)
        -> Result<()>;
    /// `y[r, c] += b[c]` for a `rows × cols` matrix `y`.
    fn add_bias(&self, y: &mut Self::Buf<E>, b: &Self::Buf<E>, rows: usize, cols: usize)
        -> Result<()>;
    /// `db[c] (acc)= Σ_r dy[r, c]`, summed in row order.
    fn bias_grad(
        &self,
        dy: &Self::Buf<E>,
        db: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()>;

    // ---- element-wise -------------------------------------------------------------
    /// `y = f(x)` over `n` elements.
    fn act_fwd(&self, f: Act, x: &Self::Buf<E>, y: &mut Self::Buf<E>, n: usize) -> Result<()>;
    /// `dx (acc)= dy · f'(x)` (using `x` or `y` as the formula needs).
    #[allow(clippy::too_many_arguments)]
    fn act_bwd(
        &self,
        f: Act,
        x: &Self::Buf<E>,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()>;
    /// `y = a + b` over `n` elements.
    fn add(&self, a: &Self::Buf<E>, b: &Self::Buf<E>, y: &mut Self::Buf<E>, n: usize)
        -> Result<()>;
    /// `dst (acc)= α · src` over `n` elements.
    fn axpy(&self, alpha: E, src: &Self::Buf<E>, dst: &mut Self::Buf<E>, n: usize, acc: Acc)
        -> Result<()>;
    /// Strided block copy: for each of `rows` rows, `dst[r·dst_ld + dst_off + j] (acc)=
    /// src[r·src_ld + src_off + j]` for `j < cols` (concatenation and its backward).
    #[allow(clippy::too_many_arguments)]
    fn copy_block(
        &self,
        src: &Self::Buf<E>,
        src_ld: usize,
        src_off: usize,
        dst: &mut Self::Buf<E>,
        dst_ld: usize,
        dst_off: usize,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()>;

    // ---- softmax and losses -----------------------------------------------------------
    /// Row-wise softmax of a `rows × cols` matrix: `y_j = e^{x_j − m} / Σ_k e^{x_k − m}`.
    fn softmax_fwd(&self, x: &Self::Buf<E>, y: &mut Self::Buf<E>, rows: usize, cols: usize)
        -> Result<()>;
    /// `dx_j (acc)= y_j (dy_j − Σ_k dy_k y_k)` per row.
    #[allow(clippy::too_many_arguments)]
    fn softmax_bwd(
        &self,
        y: &Self::Buf<E>,
        dy: &Self::Buf<E>,
        dx: &mut Self::Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()>;
    /// Computes a per-sample loss and its gradient for `rows` samples of `cols`
    /// values; returns the mean over samples (see [`LossKind`]). `dx` receives
    /// `∂mean/∂x` when given.
    #[allow(clippy::too_many_arguments)]
    fn loss(
        &self,
        kind: LossKind,
        x: &Self::Buf<E>,
        target: LossTarget<'_, E, Self>,
        dx: Option<&mut Self::Buf<E>>,
        rows: usize,
        cols: usize,
    ) -> Result<E>;

    // ---- optimizers -----------------------------------------------------------------
    /// One `torch.optim.SGD` step on `n` elements; `buf` is the momentum buffer
    /// (unused when momentum is 0).
    fn sgd_step(
        &self,
        a: &SgdArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        buf: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;
    /// One `torch.optim.Adam`/`AdamW` step on `n` elements.
    #[allow(clippy::too_many_arguments)]
    fn adam_step(
        &self,
        a: &AdamArgs,
        p: &mut Self::Buf<E>,
        g: &Self::Buf<E>,
        m: &mut Self::Buf<E>,
        v: &mut Self::Buf<E>,
        n: usize,
    ) -> Result<()>;
}

/// Which loss [`Backend::loss`] computes; formulas in `crate::loss`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// Softmax cross-entropy against class indices.
    SoftmaxCrossEntropy,
    /// Multiclass SVM hinge `Σ_{j≠y} max(0, x_j − x_y + margin)` against class indices.
    Hinge {
        /// Δ, 1 in the course.
        margin: f64,
    },
    /// Mean squared error against dense targets, averaged over all elements.
    Mse,
    /// Mean absolute error against dense targets, averaged over all elements.
    L1,
    /// Binary cross-entropy with logits against dense targets in [0, 1], averaged over all elements.
    BceWithLogits,
}

/// The target a loss compares with: class indices or a dense tensor.
pub enum LossTarget<'a, E: Elem, D: Device + ?Sized> {
    /// One class index per sample.
    Classes(&'a D::Buf<u32>),
    /// One target value per element.
    Dense(&'a D::Buf<E>),
}

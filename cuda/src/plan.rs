//! Launch plans: which kernels an operation launches, with which grid and
//! block sizes and which arguments, as plain data.
//!
//! Every `Backend` method of [`crate::Cuda`] is "check lengths, build a plan,
//! run it". Operands are referred to by index into the list of buffers the
//! method passes to the executor, so the same plan runs on the GPU (device
//! pointers) and in the host emulation that CI uses (host pointers), and the
//! launch logic is covered by tests without a GPU.
//!
//! Plans live on the stack (fixed-size arrays): running one allocates nothing.

use crate::kernels::{self, Dtype, Kernel, Param};
use kiln_core::device::Block;
use kiln_core::device::{
    AdagradArgs, AdamArgs, BatchNormDims, LossKind, Resize2d, RmspropArgs, SgdArgs, UpsampleMode,
    Window2d,
};
use kiln_core::kernels::PReluDims;
use kiln_core::layers::LayerNormDims;
use kiln_core::{Acc, Act};

/// Most arguments of any kernel.
pub const MAX_ARGS: usize = 24;
/// Most launches of any plan.
pub const MAX_LAUNCHES: usize = 4;
/// Threads per block of element-wise kernels.
pub const BLOCK: u32 = 256;
/// Most blocks of an element-wise launch (grid-stride loops cover the rest).
pub const MAX_GRID: u32 = 4096;
/// Threads per block of warp-per-row kernels (softmax, class losses): 4 rows per block.
pub const ROW_BLOCK: u32 = 128;
/// Threads per block of reductions (`sum_fwd`, `bias_bwd`).
pub const REDUCE_BLOCK: u32 = 256;
/// Blocks of the first `sum_fwd` pass (at most).
pub const REDUCE_GRID: u32 = 256;

/// One kernel argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    /// Operand `index`, starting `offset` elements in (of the operand's own type).
    Buf(u8, u64),
    /// A size.
    U64(u64),
    /// A flag.
    I32(i32),
    /// A scalar, converted to the kernel's element type at launch.
    Real(f64),
}

impl Arg {
    fn fits(&self, p: Param) -> bool {
        matches!(
            (self, p),
            (
                Arg::Buf(..),
                Param::In | Param::Out | Param::Labels | Param::OutU32 | Param::OutF64
            ) | (Arg::U64(_), Param::U64)
                | (Arg::I32(_), Param::I32)
                | (Arg::Real(_), Param::Real)
        )
    }
}

/// One kernel launch: a 1-D grid of 1-D blocks.
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    /// The kernel.
    pub kernel: &'static Kernel,
    /// Blocks.
    pub grid: u32,
    /// Threads per block (a multiple of 32).
    pub block: u32,
    /// The dtype of the kernel when it differs from the operation's (the `f64`
    /// final pass of `sum_sq` on `f32` data).
    pub dtype: Option<Dtype>,
    args: [Arg; MAX_ARGS],
    nargs: usize,
}

impl Launch {
    fn new(kernel: &'static Kernel, grid: u32, block: u32, list: &[Arg]) -> Self {
        let mut args = [Arg::U64(0); MAX_ARGS];
        args[..list.len()].copy_from_slice(list);
        Launch {
            kernel,
            grid: grid.max(1),
            block,
            dtype: None,
            args,
            nargs: list.len(),
        }
    }
    fn with_dtype(mut self, dt: Dtype) -> Self {
        self.dtype = Some(dt);
        self
    }
    /// The arguments, in the kernel's parameter order.
    pub fn args(&self) -> &[Arg] {
        &self.args[..self.nargs]
    }
    /// Whether the arguments match the kernel's declared parameters (count and kinds).
    pub fn check(&self) -> Result<(), String> {
        let p = self.kernel.params;
        if p.len() != self.nargs || !self.args().iter().zip(p).all(|(a, p)| a.fits(*p)) {
            return Err(format!(
                "kiln internal error: launch of {} with arguments {:?} but parameters {:?}",
                self.kernel.name,
                self.args(),
                p
            ));
        }
        Ok(())
    }
}

/// The launches of one operation, run in order on one stream.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    launches: [Option<Launch>; MAX_LAUNCHES],
    /// Elements of scratch memory the plan needs (appended by the executor as
    /// the last operand, e.g. [`loss_operands::SCRATCH`]).
    pub scratch: usize,
    /// Where the scalar result lands in the scratch buffer (losses), in
    /// elements of the operation's dtype.
    pub result: Option<usize>,
    /// The result's type when it is not the operation's (`f64` sums).
    pub result_dtype: Option<Dtype>,
}

impl Plan {
    fn one(l: Launch) -> Self {
        Plan {
            launches: [Some(l), None, None, None],
            scratch: 0,
            result: None,
            result_dtype: None,
        }
    }
    fn push(&mut self, l: Launch) {
        let slot = self.launches.iter_mut().find(|s| s.is_none());
        *slot.expect("kiln internal error: more than MAX_LAUNCHES launches in a plan") = Some(l);
    }
    /// The launches, in order.
    pub fn launches(&self) -> impl Iterator<Item = &Launch> {
        self.launches.iter().flatten()
    }
}

/// Grid size of an element-wise launch over `n` elements.
pub fn grid_for(n: u64) -> u32 {
    n.div_ceil(BLOCK as u64).clamp(1, MAX_GRID as u64) as u32
}

fn rows_grid(rows: u64) -> u32 {
    let per = (ROW_BLOCK / 32) as u64;
    rows.div_ceil(per).max(1).min(u32::MAX as u64) as u32
}

fn acc_flag(acc: Acc) -> i32 {
    match acc {
        Acc::Set => 0,
        Acc::Add => 1,
    }
}

fn elementwise(k: &'static Kernel, n: usize, args: &[Arg]) -> Plan {
    Plan::one(Launch::new(k, grid_for(n as u64), BLOCK, args))
}

/// `y[..n] = v`. Operands: `[y]`.
pub fn fill(n: usize, v: f64) -> Plan {
    elementwise(
        &kernels::FILL_FWD,
        n,
        &[Arg::Buf(0, 0), Arg::U64(n as u64), Arg::Real(v)],
    )
}

/// `y = a + b`. Operands: `[a, b, y]`.
pub fn add(n: usize) -> Plan {
    elementwise(
        &kernels::ADD_FWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(n as u64),
        ],
    )
}

/// `dst (acc)= α · src`. Operands: `[src, dst]`.
pub fn axpy(alpha: f64, n: usize, acc: Acc) -> Plan {
    elementwise(
        &kernels::AXPY_FWD,
        n,
        &[
            Arg::Real(alpha),
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(n as u64),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

/// Strided block copy (see `Backend::copy_block`). Operands: `[src, dst]`.
#[allow(clippy::too_many_arguments)]
pub fn copy_block(b: &Block, acc: Acc) -> Plan {
    elementwise(
        &kernels::COPY_BLOCK_FWD,
        b.rows * b.cols,
        &[
            Arg::Buf(0, b.src_off as u64),
            Arg::U64(b.src_ld as u64),
            Arg::Buf(1, b.dst_off as u64),
            Arg::U64(b.dst_ld as u64),
            Arg::U64(b.rows as u64),
            Arg::U64(b.cols as u64),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

/// `y[r, c] += b[c]`. Operands: `[y, b]`.
pub fn bias_fwd(rows: usize, cols: usize) -> Plan {
    elementwise(
        &kernels::BIAS_FWD,
        rows * cols,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(rows as u64),
            Arg::U64(cols as u64),
        ],
    )
}

/// `y[i, :] = w[ids[i], :]` for `i < n` rows of `dim`. Operands: `[w, ids, y]`.
pub fn embedding_fwd(n: usize, vocab: usize, dim: usize) -> Plan {
    elementwise(
        &kernels::EMBEDDING_FWD,
        n * dim,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(n as u64),
            Arg::U64(vocab as u64),
            Arg::U64(dim as u64),
        ],
    )
}

/// `dw[v, :] (acc)= Σ_{ids[i] = v} dy[i, :]` for `v ≠ padding`, one thread per
/// element of `dw` (deterministic). Operands: `[ids, dy, dw]`.
pub fn embedding_bwd(n: usize, vocab: usize, dim: usize, padding: Option<usize>, acc: Acc) -> Plan {
    elementwise(
        &kernels::EMBEDDING_BWD,
        vocab * dim,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(n as u64),
            Arg::U64(vocab as u64),
            Arg::U64(dim as u64),
            // `vocab` matches no row: no padding.
            Arg::U64(padding.unwrap_or(vocab) as u64),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

/// `db (acc)= Σ_r dy[r, ·]`. Operands: `[dy, db]`.
pub fn bias_bwd(rows: usize, cols: usize, acc: Acc) -> Plan {
    let grid = (cols as u64).div_ceil(32).max(1) as u32;
    Plan::one(Launch::new(
        &kernels::BIAS_BWD,
        grid,
        REDUCE_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(rows as u64),
            Arg::U64(cols as u64),
            Arg::I32(acc_flag(acc)),
        ],
    ))
}

/// `y = f(x)` (kernels generated from kiln-core's table). Operands: `[x, y]`.
pub fn act_fwd(f: Act, n: usize) -> Plan {
    let (fwd, _) = kernels::unary_kernels(f);
    let args = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(n as u64),
        Arg::Real(f.param()),
    ];
    elementwise(fwd, n, &args)
}

/// `dx (acc)= dy · f'(x or y)`; both `x` and `y` are passed and the kernel
/// reads the one its table entry names. Operands: `[x, y, dy, dx]`.
pub fn act_bwd(f: Act, n: usize, acc: Acc) -> Plan {
    let (_, bwd) = kernels::unary_kernels(f);
    let args = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::Buf(3, 0),
        Arg::U64(n as u64),
        Arg::Real(f.param()),
        Arg::I32(acc_flag(acc)),
    ];
    elementwise(bwd, n, &args)
}

/// Row-wise softmax. Operands: `[x, y]`.
pub fn softmax_fwd(rows: usize, cols: usize) -> Plan {
    Plan::one(Launch::new(
        &kernels::SOFTMAX_FWD,
        rows_grid(rows as u64),
        ROW_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(rows as u64),
            Arg::U64(cols as u64),
        ],
    ))
}

/// Softmax backward. Operands: `[y, dy, dx]`.
pub fn softmax_bwd(rows: usize, cols: usize, acc: Acc) -> Plan {
    Plan::one(Launch::new(
        &kernels::SOFTMAX_BWD,
        rows_grid(rows as u64),
        ROW_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(rows as u64),
            Arg::U64(cols as u64),
            Arg::I32(acc_flag(acc)),
        ],
    ))
}

/// Operand indices of [`loss`].
pub mod loss_operands {
    /// The predictions.
    pub const X: u8 = 0;
    /// The target: class labels (`u32`) or dense values.
    pub const TARGET: u8 = 1;
    /// The gradient (only referenced when requested).
    pub const DX: u8 = 2;
    /// Scratch memory of [`super::Plan::scratch`] elements.
    pub const SCRATCH: u8 = 3;
}

/// A loss: per-sample (or per-element) values into scratch, then two
/// deterministic `sum_fwd` passes to the mean at `scratch[result]`, and the
/// gradient when `with_grad`. Operands: see [`loss_operands`].
pub fn loss(kind: LossKind, rows: usize, cols: usize, with_grad: bool) -> Plan {
    use loss_operands::*;
    let (x, t, dx, s) = (
        Arg::Buf(X, 0),
        Arg::Buf(TARGET, 0),
        Arg::Buf(DX, 0),
        Arg::Buf(SCRATCH, 0),
    );
    let (r, c) = (Arg::U64(rows as u64), Arg::U64(cols as u64));
    let n = rows * cols;
    let nn = Arg::U64(n as u64);
    // (per-value losses, how many, 1/N, gradient)
    let (fwd, count, scale, bwd) = match kind {
        LossKind::SoftmaxCrossEntropy | LossKind::TokenCrossEntropy { .. } => {
            // per-position cross-entropy: ignored rows write 0, the mean is
            // over the counted positions; u64::MAX matches no u32 label.
            let (ignore, counted) = match kind {
                LossKind::TokenCrossEntropy {
                    ignore_index,
                    positions,
                } => (ignore_index.map_or(u64::MAX, u64::from), positions),
                _ => (u64::MAX, rows),
            };
            let (sc, ig) = (1.0 / counted as f64, Arg::U64(ignore));
            (
                Launch::new(
                    &kernels::CROSS_ENTROPY_FWD,
                    rows_grid(rows as u64),
                    ROW_BLOCK,
                    &[x, t, s, r, c, ig],
                ),
                rows,
                sc,
                Launch::new(
                    &kernels::CROSS_ENTROPY_BWD,
                    rows_grid(rows as u64),
                    ROW_BLOCK,
                    &[x, t, dx, r, c, ig, Arg::Real(sc)],
                ),
            )
        }
        LossKind::Hinge { margin } => {
            let (sc, m) = (1.0 / rows as f64, Arg::Real(margin));
            (
                Launch::new(
                    &kernels::HINGE_FWD,
                    rows_grid(rows as u64),
                    ROW_BLOCK,
                    &[x, t, s, r, c, m],
                ),
                rows,
                sc,
                Launch::new(
                    &kernels::HINGE_BWD,
                    rows_grid(rows as u64),
                    ROW_BLOCK,
                    &[x, t, dx, r, c, m, Arg::Real(sc)],
                ),
            )
        }
        LossKind::Mse | LossKind::L1 | LossKind::BceWithLogits => {
            let (kf, kb) = match kind {
                LossKind::Mse => (&kernels::MSE_FWD, &kernels::MSE_BWD),
                LossKind::L1 => (&kernels::L1_FWD, &kernels::L1_BWD),
                _ => (&kernels::BCE_WITH_LOGITS_FWD, &kernels::BCE_WITH_LOGITS_BWD),
            };
            let sc = 1.0 / n as f64;
            let g = grid_for(n as u64);
            (
                Launch::new(kf, g, BLOCK, &[x, t, s, nn]),
                n,
                sc,
                Launch::new(kb, g, BLOCK, &[x, t, dx, nn, Arg::Real(sc)]),
            )
        }
    };
    mean_of(fwd, with_grad.then_some(bwd), count, scale, SCRATCH)
}

/// The common tail of the losses: `fwd` writes `count` values to scratch
/// operand `s` (from element 0); two `sum_fwd` passes reduce them to
/// `scale · Σ` at `scratch[result]`; then `bwd` (the gradient), if any.
fn mean_of(fwd: Launch, bwd: Option<Launch>, count: usize, scale: f64, s: u8) -> Plan {
    // scratch: [per-value losses (count)] [partial sums (grid)] [result (1)]
    let grid = (count as u64)
        .div_ceil(REDUCE_BLOCK as u64)
        .clamp(1, REDUCE_GRID as u64) as u32;
    let partial = count as u64;
    let result = partial + grid as u64;
    let mut plan = Plan::one(fwd);
    plan.push(Launch::new(
        &kernels::SUM_FWD,
        grid,
        REDUCE_BLOCK,
        &[
            Arg::Buf(s, 0),
            Arg::Buf(s, partial),
            Arg::U64(count as u64),
            Arg::Real(1.0),
        ],
    ));
    plan.push(Launch::new(
        &kernels::SUM_FWD,
        1,
        REDUCE_BLOCK,
        &[
            Arg::Buf(s, partial),
            Arg::Buf(s, result),
            Arg::U64(grid as u64),
            Arg::Real(scale),
        ],
    ));
    if let Some(b) = bwd {
        plan.push(b);
    }
    plan.scratch = result as usize + 1;
    plan.result = Some(result as usize);
    plan
}

/// Soft-target cross-entropy with label smoothing. Operands: `[x, labels, t,
/// dx]` (exactly one of `labels`, `t` non-empty), scratch 4.
pub fn soft_cross_entropy(rows: usize, cols: usize, smoothing: f64, with_grad: bool) -> Plan {
    let (keep, spread, scale) = (
        Arg::Real(1.0 - smoothing),
        Arg::Real(smoothing / cols as f64),
        1.0 / rows as f64,
    );
    let (x, l, t, dx, s) = (
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::Buf(3, 0),
        Arg::Buf(4, 0),
    );
    let (r, c, g) = (
        Arg::U64(rows as u64),
        Arg::U64(cols as u64),
        rows_grid(rows as u64),
    );
    let fwd = Launch::new(
        &kernels::SOFT_CROSS_ENTROPY_FWD,
        g,
        ROW_BLOCK,
        &[x, l, t, s, r, c, keep, spread],
    );
    let bwd = Launch::new(
        &kernels::SOFT_CROSS_ENTROPY_BWD,
        g,
        ROW_BLOCK,
        &[x, l, t, dx, r, c, keep, spread, Arg::Real(scale)],
    );
    mean_of(fwd, with_grad.then_some(bwd), rows, scale, 4)
}

/// Focal loss. Operands: `[x, labels, alpha, dx]` (`alpha` may be empty), scratch 4.
pub fn focal(rows: usize, cols: usize, gamma: f64, with_grad: bool) -> Plan {
    let scale = 1.0 / rows as f64;
    let (x, l, a, dx, s) = (
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::Buf(3, 0),
        Arg::Buf(4, 0),
    );
    let (r, c, g) = (
        Arg::U64(rows as u64),
        Arg::U64(cols as u64),
        rows_grid(rows as u64),
    );
    let fwd = Launch::new(
        &kernels::FOCAL_FWD,
        g,
        ROW_BLOCK,
        &[x, l, a, s, r, c, Arg::Real(gamma)],
    );
    let bwd = Launch::new(
        &kernels::FOCAL_BWD,
        g,
        ROW_BLOCK,
        &[x, l, a, dx, r, c, Arg::Real(gamma), Arg::Real(scale)],
    );
    mean_of(fwd, with_grad.then_some(bwd), rows, scale, 4)
}

/// KL divergence (`reduction='batchmean'`). Operands: `[x, t, dx]`, scratch 3.
pub fn kl_div(rows: usize, cols: usize, log_target: bool, with_grad: bool) -> Plan {
    let (n, scale, lt) = (rows * cols, 1.0 / rows as f64, Arg::I32(log_target as i32));
    let (x, t, dx, s, nn, g) = (
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::Buf(3, 0),
        Arg::U64(n as u64),
        grid_for(n as u64),
    );
    let fwd = Launch::new(&kernels::KL_DIV_FWD, g, BLOCK, &[x, t, s, nn, lt]);
    let bwd = Launch::new(
        &kernels::KL_DIV_BWD,
        g,
        BLOCK,
        &[x, t, dx, nn, lt, Arg::Real(scale)],
    );
    mean_of(fwd, with_grad.then_some(bwd), n, scale, 3)
}

fn bn_sizes(d: &BatchNormDims) -> [Arg; 3] {
    [
        Arg::U64(d.batch as u64),
        Arg::U64(d.channels as u64),
        Arg::U64(d.spatial as u64),
    ]
}

/// Per-channel mean and biased variance, one block per channel. Operands: `[x, mean, var]`.
pub fn batch_norm_stats(d: &BatchNormDims) -> Plan {
    let [b, c, s] = bn_sizes(d);
    Plan::one(Launch::new(
        &kernels::BATCH_NORM_STATS_FWD,
        d.channels.max(1) as u32,
        REDUCE_BLOCK,
        &[Arg::Buf(0, 0), Arg::Buf(1, 0), Arg::Buf(2, 0), b, c, s],
    ))
}

/// Running statistics update. Operands: `[mean, var, running_mean, running_var, tracked]`.
pub fn batch_norm_running(d: &BatchNormDims, momentum: f64) -> Plan {
    let count = (d.batch * d.spatial) as f64;
    elementwise(
        &kernels::BATCH_NORM_RUNNING_FWD,
        d.channels,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            Arg::Buf(4, 0),
            Arg::U64(d.channels as u64),
            Arg::Real(1.0 - momentum),
            Arg::Real(momentum),
            Arg::Real(count / (count - 1.0)),
        ],
    )
}

/// Normalisation with given statistics. Operands: `[x, mean, var, gamma, beta, y]`.
pub fn batch_norm_fwd(d: &BatchNormDims) -> Plan {
    let [b, c, s] = bn_sizes(d);
    elementwise(
        &kernels::BATCH_NORM_FWD,
        d.batch * d.channels * d.spatial,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            Arg::Buf(4, 0),
            Arg::Buf(5, 0),
            b,
            c,
            s,
            Arg::Real(d.eps),
        ],
    )
}

/// Backward of batch normalisation: per-channel sums and parameter gradients,
/// then (when `dx` is requested) the input gradient.
/// Operands: `[x, mean, var, gamma, dy, dgamma, dbeta, scratch, dx]`.
pub fn batch_norm_bwd(d: &BatchNormDims, gacc: Acc, dx: Option<Acc>) -> Plan {
    let [b, c, s] = bn_sizes(d);
    let eps = Arg::Real(d.eps);
    let mut plan = Plan::one(Launch::new(
        &kernels::BATCH_NORM_BWD,
        d.channels.max(1) as u32,
        REDUCE_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(4, 0),
            Arg::Buf(5, 0),
            Arg::Buf(6, 0),
            Arg::Buf(7, 0),
            b,
            c,
            s,
            eps,
            Arg::I32(acc_flag(gacc)),
        ],
    ));
    if let Some(acc) = dx {
        let n = d.batch * d.channels * d.spatial;
        plan.push(Launch::new(
            &kernels::BATCH_NORM_INPUT_BWD,
            grid_for(n as u64),
            BLOCK,
            &[
                Arg::Buf(0, 0),
                Arg::Buf(1, 0),
                Arg::Buf(2, 0),
                Arg::Buf(3, 0),
                Arg::Buf(4, 0),
                Arg::Buf(7, 0),
                Arg::Buf(8, 0),
                b,
                c,
                s,
                eps,
                Arg::I32(acc_flag(acc)),
            ],
        ));
    }
    plan
}

/// PReLU forward. Operands: `[x, weight, y]`.
pub fn prelu_fwd(d: &PReluDims) -> Plan {
    let n = d.numel();
    elementwise(
        &kernels::PRELU_FWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(n as u64),
            Arg::U64(d.channels as u64),
            Arg::U64(d.inner as u64),
        ],
    )
}

/// PReLU backward: the slopes' gradient (one block per channel), then (when
/// `dx` is requested) the input gradient. Operands: `[x, weight, dy, dweight, dx]`.
pub fn prelu_bwd(d: &PReluDims, gacc: Acc, dx: Option<Acc>) -> Plan {
    let (c, inner) = (Arg::U64(d.channels as u64), Arg::U64(d.inner as u64));
    let mut plan = Plan::one(Launch::new(
        &kernels::PRELU_WEIGHT_BWD,
        d.channels.max(1) as u32,
        REDUCE_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            Arg::U64(d.batch as u64),
            c,
            inner,
            Arg::I32(acc_flag(gacc)),
        ],
    ));
    if let Some(acc) = dx {
        let n = d.numel();
        plan.push(Launch::new(
            &kernels::PRELU_BWD,
            grid_for(n as u64),
            BLOCK,
            &[
                Arg::Buf(0, 0),
                Arg::Buf(1, 0),
                Arg::Buf(2, 0),
                Arg::Buf(4, 0),
                Arg::U64(n as u64),
                c,
                inner,
                Arg::I32(acc_flag(acc)),
            ],
        ));
    }
    plan
}

/// Layer normalisation, one warp per row; `flags` bit 0: γ given, bit 1: β
/// given. Operands: `[x, gamma, beta, y, stats]`.
pub fn layer_norm_fwd(d: &LayerNormDims, flags: i32) -> Plan {
    Plan::one(Launch::new(
        &kernels::LAYER_NORM_FWD,
        rows_grid(d.rows as u64),
        ROW_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            Arg::Buf(4, 0),
            Arg::U64(d.rows as u64),
            Arg::U64(d.cols as u64),
            Arg::Real(d.eps),
            Arg::I32(flags),
        ],
    ))
}

/// Layer-normalisation backward: the parameter gradients (`flags` bit 0: dγ,
/// bit 1: dβ; 32 columns per block) when any is requested, then the input
/// gradient (one warp per row, `flags` bit 2: γ given) when `dx` is.
/// Operands: `[x, stats, gamma, dy, dx, dgamma, dbeta]`.
pub fn layer_norm_bwd(d: &LayerNormDims, flags: i32, gacc: Acc, dx: Option<Acc>) -> Plan {
    let (rows, cols) = (Arg::U64(d.rows as u64), Arg::U64(d.cols as u64));
    let mut plan = Plan {
        launches: [None; MAX_LAUNCHES],
        scratch: 0,
        result: None,
        result_dtype: None,
    };
    if flags & 3 != 0 {
        plan.push(Launch::new(
            &kernels::LAYER_NORM_PARAM_BWD,
            (d.cols as u64).div_ceil(32).max(1) as u32,
            REDUCE_BLOCK,
            &[
                Arg::Buf(0, 0),
                Arg::Buf(1, 0),
                Arg::Buf(3, 0),
                Arg::Buf(5, 0),
                Arg::Buf(6, 0),
                rows,
                cols,
                Arg::I32(flags & 3),
                Arg::I32(acc_flag(gacc)),
            ],
        ));
    }
    if let Some(acc) = dx {
        plan.push(Launch::new(
            &kernels::LAYER_NORM_BWD,
            rows_grid(d.rows as u64),
            ROW_BLOCK,
            &[
                Arg::Buf(0, 0),
                Arg::Buf(1, 0),
                Arg::Buf(2, 0),
                Arg::Buf(3, 0),
                Arg::Buf(4, 0),
                rows,
                cols,
                Arg::I32((flags >> 2) & 1),
                Arg::I32(acc_flag(acc)),
            ],
        ));
    }
    plan
}

fn resize_args(g: &Resize2d, batch: usize) -> [Arg; 6] {
    [
        Arg::U64((batch * g.channels) as u64),
        Arg::U64(g.h as u64),
        Arg::U64(g.w as u64),
        Arg::U64(g.oh as u64),
        Arg::U64(g.ow as u64),
        Arg::I32((g.mode == UpsampleMode::Bilinear) as i32),
    ]
}

/// Upsampling. Operands: `[x, y]`.
pub fn upsample2d_fwd(g: &Resize2d, batch: usize) -> Plan {
    let [p, h, w, oh, ow, m] = resize_args(g, batch);
    elementwise(
        &kernels::UPSAMPLE2D_FWD,
        batch * g.channels * g.oh * g.ow,
        &[Arg::Buf(0, 0), Arg::Buf(1, 0), p, h, w, oh, ow, m],
    )
}

/// Upsampling's backward. Operands: `[dy, dx]`.
pub fn upsample2d_bwd(g: &Resize2d, batch: usize, acc: Acc) -> Plan {
    let [p, h, w, oh, ow, m] = resize_args(g, batch);
    elementwise(
        &kernels::UPSAMPLE2D_BWD,
        batch * g.channels * g.h * g.w,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            p,
            h,
            w,
            oh,
            ow,
            m,
            Arg::I32(acc_flag(acc)),
        ],
    )
}

/// One `torch.optim.SGD` step. Operands: `[p, g, buf]` (`buf` may be empty when μ = 0).
pub fn sgd(a: &SgdArgs, n: usize) -> Plan {
    elementwise(
        &kernels::SGD_FWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(n as u64),
            Arg::Real(a.lr),
            Arg::Real(a.momentum),
            Arg::Real(a.dampening),
            Arg::Real(a.weight_decay),
            Arg::I32((a.momentum != 0.0) as i32),
            Arg::I32(a.nesterov as i32),
            Arg::I32(a.first as i32),
        ],
    )
}

/// One `torch.optim.Adam`/`AdamW` step, bias corrections computed here in f64
/// exactly as cpu.rs does. Operands: `[p, g, m, v]`.
pub fn adam(a: &AdamArgs, n: usize) -> Plan {
    let t = a.step as i32;
    let bc1 = 1.0 - a.beta1.powi(t);
    let bc2 = 1.0 - a.beta2.powi(t);
    elementwise(
        &kernels::ADAM_FWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            Arg::U64(n as u64),
            Arg::Real(a.beta1),
            Arg::Real(a.beta2),
            Arg::Real(a.lr / bc1),
            Arg::Real(bc2.sqrt()),
            Arg::Real(a.eps),
            Arg::Real(a.weight_decay),
            Arg::Real(1.0 - a.lr * a.weight_decay),
            Arg::I32(a.decoupled as i32),
        ],
    )
}

/// `Σ x²` (or `Σ |x|` with `abs`) in `f64`: per-block partial sums, then
/// `sum_fwd_f64` over them; the result is an `f64` in scratch. Operands: `[x]`.
pub fn sum_sq(n: usize, abs: bool, dt: Dtype) -> Plan {
    let unit = (8 / dt.size()) as u64; // elements of `dt` per f64
    let grid = (n as u64)
        .div_ceil(REDUCE_BLOCK as u64)
        .clamp(1, REDUCE_GRID as u64) as u32;
    let (partial, result) = (0u64, grid as u64 * unit);
    let k = if abs {
        &kernels::SUM_ABS_FWD
    } else {
        &kernels::SUM_SQ_FWD
    };
    let mut plan = Plan::one(Launch::new(
        k,
        grid,
        REDUCE_BLOCK,
        &[Arg::Buf(0, 0), Arg::Buf(1, partial), Arg::U64(n as u64)],
    ));
    plan.push(
        Launch::new(
            &kernels::SUM_FWD,
            1,
            REDUCE_BLOCK,
            &[
                Arg::Buf(1, partial),
                Arg::Buf(1, result),
                Arg::U64(grid as u64),
                Arg::Real(1.0),
            ],
        )
        .with_dtype(Dtype::F64),
    );
    plan.scratch = (result + unit) as usize;
    plan.result = Some(result as usize);
    plan.result_dtype = Some(Dtype::F64);
    plan
}

/// `dst (acc)= l1·sign(θ) + 2·l2·θ`. Operands: `[theta, dst]`.
pub fn penalty_grad(l1: f64, l2: f64, n: usize, acc: Acc) -> Plan {
    elementwise(
        &kernels::PENALTY_BWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(n as u64),
            Arg::Real(l1),
            Arg::Real(2.0 * l2),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

fn keep_scale(p: f64) -> f64 {
    if p >= 1.0 {
        0.0
    } else {
        1.0 / (1.0 - p)
    }
}

/// Inverted dropout. Operands: `[x, y]`.
pub fn dropout_fwd(n: usize, p: f64, seed: u64) -> Plan {
    let thr = kiln_core::device::dropout_threshold(p);
    elementwise(
        &kernels::DROPOUT_FWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(n as u64),
            Arg::U64(seed),
            Arg::U64(thr),
            Arg::Real(keep_scale(p)),
        ],
    )
}

/// Dropout backward. Operands: `[dy, dx]`.
pub fn dropout_bwd(n: usize, p: f64, seed: u64, acc: Acc) -> Plan {
    let thr = kiln_core::device::dropout_threshold(p);
    elementwise(
        &kernels::DROPOUT_BWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(n as u64),
            Arg::U64(seed),
            Arg::U64(thr),
            Arg::Real(keep_scale(p)),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

/// One `torch.optim.Adagrad` step. Operands: `[p, g, sum]`.
pub fn adagrad(a: &AdagradArgs, n: usize) -> Plan {
    let clr = a.lr / (1.0 + (a.step as f64 - 1.0) * a.lr_decay);
    elementwise(
        &kernels::ADAGRAD_FWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::U64(n as u64),
            Arg::Real(clr),
            Arg::Real(a.weight_decay),
            Arg::Real(a.eps),
        ],
    )
}

/// One `torch.optim.RMSprop` step. Operands: `[p, g, square_avg, grad_avg, buf]`
/// (the last two may be empty when unused).
pub fn rmsprop(a: &RmspropArgs, n: usize) -> Plan {
    elementwise(
        &kernels::RMSPROP_FWD,
        n,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::Buf(2, 0),
            Arg::Buf(3, 0),
            Arg::Buf(4, 0),
            Arg::U64(n as u64),
            Arg::Real(a.alpha),
            Arg::Real(a.eps),
            Arg::Real(a.weight_decay),
            Arg::Real(a.lr),
            Arg::Real(a.momentum),
            Arg::I32(a.centered as i32),
            Arg::I32((a.momentum > 0.0) as i32),
        ],
    )
}

/// The 13 window sizes, in the kernels' `KILN_WINDOW_PARAMS` order.
fn window(g: &Window2d) -> [Arg; 13] {
    [
        g.channels, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow,
    ]
    .map(|v| Arg::U64(v as u64))
}

fn with_window<const N: usize>(head: [Arg; N], g: &Window2d) -> ([Arg; MAX_ARGS], usize) {
    let mut a = [Arg::U64(0); MAX_ARGS];
    a[..N].copy_from_slice(&head);
    a[N..N + 13].copy_from_slice(&window(g));
    (a, N + 13)
}

fn windowed<const N: usize>(
    k: &'static Kernel,
    threads: usize,
    head: [Arg; N],
    g: &Window2d,
) -> Plan {
    let (a, n) = with_window(head, g);
    elementwise(k, threads, &a[..n])
}

/// `im2col` of samples `first .. first + count`. Operands: `[x, cols]`.
pub fn im2col(g: &Window2d, first: usize, count: usize) -> Plan {
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(first as u64),
        Arg::U64(count as u64),
    ];
    windowed(
        &kernels::IM2COL_FWD,
        g.rows() * count * g.out_plane(),
        head,
        g,
    )
}

/// `col2im` (acc) into samples `first .. first + count`. Operands: `[cols, x]`.
pub fn col2im(g: &Window2d, first: usize, count: usize, acc: Acc) -> Plan {
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(first as u64),
        Arg::U64(count as u64),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(
        &kernels::IM2COL_BWD,
        count * g.channels * g.in_plane(),
        head,
        g,
    )
}

/// Swap of the first two axes of `[a, b, n]`. Operands: `[src, dst]`.
pub fn transpose01(src_off: usize, dst_off: usize, a: usize, b: usize, n: usize, acc: Acc) -> Plan {
    elementwise(
        &kernels::TRANSPOSE01_FWD,
        a * b * n,
        &[
            Arg::Buf(0, src_off as u64),
            Arg::Buf(1, dst_off as u64),
            Arg::U64(a as u64),
            Arg::U64(b as u64),
            Arg::U64(n as u64),
            Arg::I32(acc_flag(acc)),
        ],
    )
}

/// `y[s, c, p] += bias[c]`. Operands: `[y, bias]`.
pub fn channel_bias_fwd(batch: usize, channels: usize, spatial: usize) -> Plan {
    elementwise(
        &kernels::CHANNEL_BIAS_FWD,
        batch * channels * spatial,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(batch as u64),
            Arg::U64(channels as u64),
            Arg::U64(spatial as u64),
        ],
    )
}

/// `db[c] (acc)= Σ dy[·, c, ·]`, one block per channel. Operands: `[dy, db]`.
pub fn channel_bias_bwd(batch: usize, channels: usize, spatial: usize, acc: Acc) -> Plan {
    Plan::one(Launch::new(
        &kernels::CHANNEL_BIAS_BWD,
        channels.min(u32::MAX as usize) as u32,
        REDUCE_BLOCK,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            Arg::U64(batch as u64),
            Arg::U64(channels as u64),
            Arg::U64(spatial as u64),
            Arg::I32(acc_flag(acc)),
        ],
    ))
}

/// Max pooling of `batch` images. Operands: `[x, y, indices]`.
pub fn max_pool2d_fwd(g: &Window2d, batch: usize) -> Plan {
    let planes = batch * g.channels;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(planes as u64),
    ];
    windowed(&kernels::MAX_POOL2D_FWD, planes * g.out_plane(), head, g)
}

/// Max unpooling (max pooling's backward). Operands: `[indices, src, dst]`.
pub fn max_unpool2d(g: &Window2d, batch: usize, acc: Acc) -> Plan {
    let planes = batch * g.channels;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(planes as u64),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(&kernels::MAX_UNPOOL2D_FWD, planes * g.in_plane(), head, g)
}

/// Max unpooling's backward. Operands: `[indices, src, dst]`.
pub fn max_unpool2d_bwd(g: &Window2d, batch: usize, acc: Acc) -> Plan {
    let planes = batch * g.channels;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(planes as u64),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(&kernels::MAX_UNPOOL2D_BWD, planes * g.out_plane(), head, g)
}

/// Average pooling (padding counted). Operands: `[x, y]`.
pub fn avg_pool2d_fwd(g: &Window2d, batch: usize) -> Plan {
    let planes = batch * g.channels;
    let inv = 1.0 / (g.kh * g.kw) as f64;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(planes as u64),
        Arg::Real(inv),
    ];
    windowed(&kernels::AVG_POOL2D_FWD, planes * g.out_plane(), head, g)
}

/// Average pooling's backward. Operands: `[dy, dx]`.
pub fn avg_pool2d_bwd(g: &Window2d, batch: usize, acc: Acc) -> Plan {
    let planes = batch * g.channels;
    let inv = 1.0 / (g.kh * g.kw) as f64;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(planes as u64),
        Arg::Real(inv),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(&kernels::AVG_POOL2D_BWD, planes * g.in_plane(), head, g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_matches_its_kernels_signature() {
        let sgd_args = SgdArgs {
            lr: 0.1,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            first: true,
        };
        let adam_args = AdamArgs {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            step: 1,
        };
        let mut plans = vec![
            fill(10, 1.0),
            add(10),
            axpy(2.0, 10, Acc::Add),
            copy_block(
                &Block {
                    src_ld: 4,
                    src_off: 1,
                    dst_ld: 5,
                    dst_off: 2,
                    rows: 3,
                    cols: 2,
                },
                Acc::Set,
            ),
            bias_fwd(3, 4),
            bias_bwd(3, 4, Acc::Set),
            softmax_fwd(3, 4),
            softmax_bwd(3, 4, Acc::Add),
            sgd(&sgd_args, 10),
            adam(&adam_args, 10),
        ];
        for &f in Act::ALL {
            plans.push(act_fwd(f, 10));
            plans.push(act_bwd(f, 10, Acc::Set));
        }
        for k in [
            LossKind::SoftmaxCrossEntropy,
            LossKind::Hinge { margin: 1.0 },
            LossKind::Mse,
            LossKind::L1,
            LossKind::BceWithLogits,
        ] {
            plans.push(loss(k, 3, 4, true));
        }
        let g = Window2d::new("test", 2, (6, 5), (3, 2), (2, 1), (1, 0), (1, 2)).unwrap();
        let ada = AdagradArgs {
            lr: 0.1,
            lr_decay: 0.0,
            weight_decay: 0.0,
            eps: 1e-10,
            step: 1,
        };
        let rms = RmspropArgs {
            lr: 0.1,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        };
        plans.extend([
            sum_sq(10, false, Dtype::F32),
            sum_sq(10, true, Dtype::F64),
            penalty_grad(0.1, 0.2, 10, Acc::Set),
            dropout_fwd(10, 0.5, 1),
            dropout_bwd(10, 0.5, 1, Acc::Add),
            adagrad(&ada, 10),
            rmsprop(&rms, 10),
            im2col(&g, 0, 2),
            col2im(&g, 1, 1, Acc::Set),
            transpose01(0, 0, 2, 3, 4, Acc::Set),
            channel_bias_fwd(2, 3, 4),
            channel_bias_bwd(2, 3, 4, Acc::Add),
            max_pool2d_fwd(&g, 2),
            max_unpool2d(&g, 2, Acc::Set),
            max_unpool2d_bwd(&g, 2, Acc::Set),
            avg_pool2d_fwd(&g, 2),
            avg_pool2d_bwd(&g, 2, Acc::Add),
            soft_cross_entropy(3, 4, 0.1, true),
            focal(3, 4, 2.0, true),
            kl_div(3, 4, false, true),
        ]);
        let bn = BatchNormDims {
            batch: 2,
            channels: 3,
            spatial: 4,
            eps: 1e-5,
        };
        let rs = Resize2d {
            mode: UpsampleMode::Bilinear,
            channels: 2,
            h: 3,
            w: 4,
            oh: 6,
            ow: 8,
        };
        plans.extend([
            batch_norm_stats(&bn),
            batch_norm_running(&bn, 0.1),
            batch_norm_fwd(&bn),
            batch_norm_bwd(&bn, Acc::Set, Some(Acc::Add)),
            upsample2d_fwd(&rs, 2),
            upsample2d_bwd(&rs, 2, Acc::Set),
            embedding_fwd(12, 7, 5),
            embedding_bwd(12, 7, 5, Some(0), Acc::Set),
        ]);
        let pd = PReluDims {
            batch: 2,
            channels: 3,
            inner: 4,
        };
        plans.extend([prelu_fwd(&pd), prelu_bwd(&pd, Acc::Set, Some(Acc::Add))]);
        let ld = LayerNormDims {
            rows: 5,
            cols: 40,
            eps: 1e-5,
        };
        plans.extend([
            layer_norm_fwd(&ld, 3),
            layer_norm_bwd(&ld, 7, Acc::Set, Some(Acc::Add)),
        ]);
        let mut seen = std::collections::HashSet::new();
        for p in &plans {
            for l in p.launches() {
                l.check().unwrap();
                assert_eq!(l.block % 32, 0);
                seen.insert(l.kernel.name);
            }
        }
        assert_eq!(
            seen.len(),
            kernels::KERNEL_COUNT,
            "some kernel is in no plan"
        );
    }
}

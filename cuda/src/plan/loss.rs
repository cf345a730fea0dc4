//! Softmax and loss plans (value and gradient in one pass), and the
//! `f64` sums behind gradient norms and penalties.

#[allow(unused_imports)]
use super::*;

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

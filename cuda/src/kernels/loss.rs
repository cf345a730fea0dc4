//! The losses (`loss.cu`): value and gradient in one pass, the
//! deterministic two-pass means, the `f64` sums behind gradient norms and
//! penalties; their plans and [`Cuda`]'s `LossKernels`.

use super::family::*;

kernels! {
    loss = include_str!("loss.cu");
    CROSS_ENTROPY_FWD = cross_entropy_fwd(In, Labels, Out, U64, U64, U64);
    CROSS_ENTROPY_BWD = cross_entropy_bwd(In, Labels, Out, U64, U64, U64, Real);
    HINGE_FWD = hinge_fwd(In, Labels, Out, U64, U64, Real);
    HINGE_BWD = hinge_bwd(In, Labels, Out, U64, U64, Real, Real);
    MSE_FWD = mse_fwd(In, In, Out, U64);
    MSE_BWD = mse_bwd(In, In, Out, U64, Real);
    L1_FWD = l1_fwd(In, In, Out, U64);
    L1_BWD = l1_bwd(In, In, Out, U64, Real);
    BCE_WITH_LOGITS_FWD = bce_with_logits_fwd(In, In, Out, U64);
    BCE_WITH_LOGITS_BWD = bce_with_logits_bwd(In, In, Out, U64, Real);
    SUM_FWD = sum_fwd(In, Out, U64, Real);
    SOFT_CROSS_ENTROPY_FWD = soft_cross_entropy_fwd(In, Labels, In, Out, U64, U64, Real, Real);
    SOFT_CROSS_ENTROPY_BWD = soft_cross_entropy_bwd(In, Labels, In, Out, U64, U64, Real, Real, Real);
    FOCAL_FWD = focal_fwd(In, Labels, In, Out, U64, U64, Real);
    FOCAL_BWD = focal_bwd(In, Labels, In, Out, U64, U64, Real, Real);
    KL_DIV_FWD = kl_div_fwd(In, In, Out, U64, I32);
    KL_DIV_BWD = kl_div_bwd(In, In, Out, U64, I32, Real);
    SUM_SQ_FWD = sum_sq_fwd(In, OutF64, U64);
    SUM_ABS_FWD = sum_abs_fwd(In, OutF64, U64);
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
                    &CROSS_ENTROPY_FWD,
                    rows_grid(rows as u64),
                    ROW_BLOCK,
                    &[x, t, s, r, c, ig],
                ),
                rows,
                sc,
                Launch::new(
                    &CROSS_ENTROPY_BWD,
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
                    &HINGE_FWD,
                    rows_grid(rows as u64),
                    ROW_BLOCK,
                    &[x, t, s, r, c, m],
                ),
                rows,
                sc,
                Launch::new(
                    &HINGE_BWD,
                    rows_grid(rows as u64),
                    ROW_BLOCK,
                    &[x, t, dx, r, c, m, Arg::Real(sc)],
                ),
            )
        }
        LossKind::Mse | LossKind::L1 | LossKind::BceWithLogits => {
            let (kf, kb) = match kind {
                LossKind::Mse => (&MSE_FWD, &MSE_BWD),
                LossKind::L1 => (&L1_FWD, &L1_BWD),
                _ => (&BCE_WITH_LOGITS_FWD, &BCE_WITH_LOGITS_BWD),
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
        &SUM_FWD,
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
        &SUM_FWD,
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
        &SOFT_CROSS_ENTROPY_FWD,
        g,
        ROW_BLOCK,
        &[x, l, t, s, r, c, keep, spread],
    );
    let bwd = Launch::new(
        &SOFT_CROSS_ENTROPY_BWD,
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
        &FOCAL_FWD,
        g,
        ROW_BLOCK,
        &[x, l, a, s, r, c, Arg::Real(gamma)],
    );
    let bwd = Launch::new(
        &FOCAL_BWD,
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
    let fwd = Launch::new(&KL_DIV_FWD, g, BLOCK, &[x, t, s, nn, lt]);
    let bwd = Launch::new(
        &KL_DIV_BWD,
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
        &SUM_ABS_FWD
    } else {
        &SUM_SQ_FWD
    };
    let mut plan = Plan::one(Launch::new(
        k,
        grid,
        REDUCE_BLOCK,
        &[Arg::Buf(0, 0), Arg::Buf(1, partial), Arg::U64(n as u64)],
    ));
    plan.push(
        Launch::new(
            &SUM_FWD,
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

impl Cuda {
    /// The gradient operand of a loss, or a null one.
    fn loss_dx<E: Elem>(&self, dx: Option<&mut Buf<E>>) -> Result<Opnd> {
        match dx {
            Some(d) => self.opnd_mut(d),
            None => Ok(Opnd { addr: 0, esize: 0 }),
        }
    }
    /// Runs a loss plan and returns its mean.
    fn scalar<E: Elem>(&self, p: &Plan, ops: &[Opnd], n: usize) -> Result<E> {
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
    pub(crate) fn sum_f64<E: Elem>(&self, x: &Buf<E>, n: usize, abs: bool) -> Result<f64> {
        if n == 0 {
            return Ok(0.0);
        }
        let dt = dtype::<E>()?;
        let v = self.run(dt, &sum_sq(n, abs, dt), &[self.opnd(x)?])?;
        v.ok_or_else(|| Error::invalid("sum_sq", "kiln internal error: the plan produced no value"))
    }
}

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
        let p = loss(kind, rows, cols, with_grad);
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
        let p = soft_cross_entropy(rows, cols, smoothing, dx.is_some());
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
        let p = focal(rows, cols, gamma, dx.is_some());
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
        let p = kl_div(rows, cols, log_target, dx.is_some());
        let pdx = self.loss_dx(dx)?;
        self.scalar::<E>(&p, &[self.opnd(x)?, self.opnd(target)?, pdx], rows * cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let mut plans = vec![
            soft_cross_entropy(3, 4, 0.1, true),
            focal(3, 4, 2.0, true),
            kl_div(3, 4, false, true),
            sum_sq(10, false, Dtype::F32),
            sum_sq(10, true, Dtype::F64),
        ];
        for k in [
            LossKind::SoftmaxCrossEntropy,
            LossKind::Hinge { margin: 1.0 },
            LossKind::Mse,
            LossKind::L1,
            LossKind::BceWithLogits,
        ] {
            plans.push(loss(k, 3, 4, true));
        }
        check_plans(&MODULE, &plans);
    }
}

//! Normalisation plans: batch norm, PReLU and LayerNorm.

#[allow(unused_imports)]
use super::*;

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

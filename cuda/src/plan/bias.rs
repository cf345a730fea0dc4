//! Bias plans: the row bias of `Linear` and the per-channel bias of the
//! convolutions, forward and gradient.

#[allow(unused_imports)]
use super::*;

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

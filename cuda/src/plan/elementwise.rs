//! Element-wise plans: fill, add, axpy, strided block copies, the
//! activations of the table in kiln-core, dropout and the penalty gradient.

#[allow(unused_imports)]
use super::*;

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

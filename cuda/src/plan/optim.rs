//! Optimizer-update plans (`torch.optim`'s SGD, Adam/AdamW, Adagrad, RMSprop).

#[allow(unused_imports)]
use super::*;

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

//! Optimizer updates and the penalty gradient (`optim.cu`; `torch.optim`'s
//! SGD, Adam/AdamW, Adagrad, RMSprop): the kernels, their plans and [`Cuda`]'s
//! `OptimKernels`.

use super::family::*;

kernels! {
    optim = include_str!("optim.cu");
    SGD_FWD = sgd_fwd(Out, In, Out, U64, Real, Real, Real, Real, I32, I32, I32);
    ADAM_FWD = adam_fwd(Out, In, Out, Out, U64, Real, Real, Real, Real, Real, Real, Real, I32);
    ADAGRAD_FWD = adagrad_fwd(Out, In, Out, U64, Real, Real, Real);
    RMSPROP_FWD = rmsprop_fwd(Out, In, Out, Out, Out, U64, Real, Real, Real, Real, Real, I32, I32);
    PENALTY_BWD = penalty_bwd(In, Out, U64, Real, Real, I32);
}

/// One `torch.optim.SGD` step. Operands: `[p, g, buf]` (`buf` may be empty when μ = 0).
pub fn sgd(a: &SgdArgs, n: usize) -> Plan {
    elementwise(
        &SGD_FWD,
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
        &ADAM_FWD,
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
        &ADAGRAD_FWD,
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
        &RMSPROP_FWD,
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

/// `dst (acc)= l1·sign(θ) + 2·l2·θ`. Operands: `[theta, dst]`.
pub fn penalty_grad(l1: f64, l2: f64, n: usize, acc: Acc) -> Plan {
    elementwise(
        &PENALTY_BWD,
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

impl<E: Elem> OptimKernels<E> for Cuda {
    fn raw_sgd_step(
        &self,
        a: &SgdArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        buf: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        let ops = [self.opnd_mut(p)?, self.opnd(g)?, self.opnd_mut(buf)?];
        self.go::<E>(&sgd(a, n), &ops)
    }

    fn raw_adam_step(
        &self,
        a: &AdamArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        m: &mut Buf<E>,
        v: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        let ops = [
            self.opnd_mut(p)?,
            self.opnd(g)?,
            self.opnd_mut(m)?,
            self.opnd_mut(v)?,
        ];
        self.go::<E>(&adam(a, n), &ops)
    }
    fn raw_adagrad_step(
        &self,
        a: &AdagradArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        sum: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        let ops = [self.opnd_mut(p)?, self.opnd(g)?, self.opnd_mut(sum)?];
        self.go::<E>(&adagrad(a, n), &ops)
    }

    fn raw_rmsprop_step(
        &self,
        a: &RmspropArgs,
        p: &mut Buf<E>,
        g: &Buf<E>,
        square_avg: &mut Buf<E>,
        grad_avg: &mut Buf<E>,
        buf: &mut Buf<E>,
        n: usize,
    ) -> Result<()> {
        let ops = [
            self.opnd_mut(p)?,
            self.opnd(g)?,
            self.opnd_mut(square_avg)?,
            self.opnd_mut(grad_avg)?,
            self.opnd_mut(buf)?,
        ];
        self.go::<E>(&rmsprop(a, n), &ops)
    }
    fn raw_penalty_grad(
        &self,
        l1: f64,
        l2: f64,
        theta: &Buf<E>,
        dst: &mut Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(theta)?, self.opnd_mut(dst)?];
        self.go::<E>(&penalty_grad(l1, l2, n, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
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
        check_plans(
            &MODULE,
            &[
                sgd(&sgd_args, 10),
                adam(&adam_args, 10),
                adagrad(&ada, 10),
                rmsprop(&rms, 10),
                penalty_grad(0.1, 0.2, 10, Acc::Set),
            ],
        );
    }
}

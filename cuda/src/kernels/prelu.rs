//! PReLU (`prelu.cu`): the kernels, their plans and [`Cuda`]'s
//! `PReluKernels`.

use super::family::*;

kernels! {
    prelu = include_str!("prelu.cu");
    PRELU_FWD = prelu_fwd(In, In, Out, U64, U64, U64);
    PRELU_BWD = prelu_bwd(In, In, In, Out, U64, U64, U64, I32);
    PRELU_WEIGHT_BWD = prelu_weight_bwd(In, In, Out, U64, U64, U64, I32);
}

/// PReLU forward. Operands: `[x, weight, y]`.
pub fn prelu_fwd(d: &PReluDims) -> Plan {
    let n = d.numel();
    elementwise(
        &PRELU_FWD,
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
        &PRELU_WEIGHT_BWD,
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
            &PRELU_BWD,
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

impl<E: Elem> PReluKernels<E> for Cuda {
    fn raw_prelu_fwd(&self, d: &PReluDims, x: &Buf<E>, a: &Buf<E>, y: &mut Buf<E>) -> Result<()> {
        if d.numel() == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd(a)?, self.opnd_mut(y)?];
        self.go::<E>(&prelu_fwd(d), &ops)
    }

    fn raw_prelu_bwd(
        &self,
        d: &PReluDims,
        x: &Buf<E>,
        a: &Buf<E>,
        dy: &Buf<E>,
        dx: Option<(&mut Buf<E>, Acc)>,
        da: &mut Buf<E>,
        gacc: Acc,
    ) -> Result<()> {
        if d.channels == 0 {
            return Ok(());
        }
        let (pdx, acc) = match dx {
            Some((b, acc)) => (self.opnd_mut(b)?, Some(acc)),
            None => (Opnd { addr: 0, esize: 0 }, None),
        };
        let ops = [
            self.opnd(x)?,
            self.opnd(a)?,
            self.opnd(dy)?,
            self.opnd_mut(da)?,
            pdx,
        ];
        self.go::<E>(&prelu_bwd(d, gacc, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let pd = PReluDims {
            batch: 2,
            channels: 3,
            inner: 4,
        };
        check_plans(&MODULE, &[prelu_fwd(&pd), prelu_bwd(&pd, Acc::Set, Some(Acc::Add))]);
    }
}

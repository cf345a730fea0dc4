//! Batch normalisation (`batchnorm.cu`): statistics, running averages,
//! normalisation and the backward, their plans and [`Cuda`]'s
//! `BatchNormKernels`.

use super::family::*;

kernels! {
    batchnorm = include_str!("batchnorm.cu");
    BATCH_NORM_STATS_FWD = batch_norm_stats_fwd(In, Out, Out, U64, U64, U64);
    BATCH_NORM_RUNNING_FWD = batch_norm_running_fwd(In, In, Out, Out, Out, U64, Real, Real, Real);
    BATCH_NORM_FWD = batch_norm_fwd(In, In, In, In, In, Out, U64, U64, U64, Real);
    BATCH_NORM_BWD = batch_norm_bwd(In, In, In, In, Out, Out, Out, U64, U64, U64, Real, I32);
    BATCH_NORM_INPUT_BWD = batch_norm_input_bwd(In, In, In, In, In, In, Out, U64, U64, U64, Real, I32);
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
        &BATCH_NORM_STATS_FWD,
        d.channels.max(1) as u32,
        REDUCE_BLOCK,
        &[Arg::Buf(0, 0), Arg::Buf(1, 0), Arg::Buf(2, 0), b, c, s],
    ))
}

/// Running statistics update. Operands: `[mean, var, running_mean, running_var, tracked]`.
pub fn batch_norm_running(d: &BatchNormDims, momentum: f64) -> Plan {
    let count = (d.batch * d.spatial) as f64;
    elementwise(
        &BATCH_NORM_RUNNING_FWD,
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
        &BATCH_NORM_FWD,
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
        &BATCH_NORM_BWD,
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
            &BATCH_NORM_INPUT_BWD,
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

impl<E: Elem> BatchNormKernels<E> for Cuda {
    fn raw_batch_norm_stats(
        &self,
        d: &BatchNormDims,
        x: &Buf<E>,
        mean: &mut Buf<E>,
        var: &mut Buf<E>,
    ) -> Result<()> {
        if d.channels == 0 {
            return Ok(());
        }
        let ops = [self.opnd(x)?, self.opnd_mut(mean)?, self.opnd_mut(var)?];
        self.go::<E>(&batch_norm_stats(d), &ops)
    }

    fn raw_batch_norm_running(
        &self,
        d: &BatchNormDims,
        momentum: f64,
        mean: &Buf<E>,
        var: &Buf<E>,
        running_mean: &mut Buf<E>,
        running_var: &mut Buf<E>,
        tracked: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [
            self.opnd(mean)?,
            self.opnd(var)?,
            self.opnd_mut(running_mean)?,
            self.opnd_mut(running_var)?,
            self.opnd_mut(tracked)?,
        ];
        self.go::<E>(&batch_norm_running(d, momentum), &ops)
    }

    fn raw_batch_norm_fwd(
        &self,
        d: &BatchNormDims,
        x: &Buf<E>,
        mean: &Buf<E>,
        var: &Buf<E>,
        gamma: &Buf<E>,
        beta: &Buf<E>,
        y: &mut Buf<E>,
    ) -> Result<()> {
        let ops = [
            self.opnd(x)?,
            self.opnd(mean)?,
            self.opnd(var)?,
            self.opnd(gamma)?,
            self.opnd(beta)?,
            self.opnd_mut(y)?,
        ];
        self.go::<E>(&batch_norm_fwd(d), &ops)
    }

    fn raw_batch_norm_bwd(
        &self,
        d: &BatchNormDims,
        x: &Buf<E>,
        mean: &Buf<E>,
        var: &Buf<E>,
        gamma: &Buf<E>,
        dy: &Buf<E>,
        dx: Option<(&mut Buf<E>, Acc)>,
        dgamma: &mut Buf<E>,
        dbeta: &mut Buf<E>,
        gacc: Acc,
        scratch: &mut Buf<E>,
    ) -> Result<()> {
        let ch = d.channels;
        if ch == 0 {
            return Ok(());
        }
        let (pdx, acc) = match dx {
            Some((b, acc)) => (self.opnd_mut(b)?, Some(acc)),
            None => (Opnd { addr: 0, esize: 0 }, None),
        };
        let ops = [
            self.opnd(x)?,
            self.opnd(mean)?,
            self.opnd(var)?,
            self.opnd(gamma)?,
            self.opnd(dy)?,
            self.opnd_mut(dgamma)?,
            self.opnd_mut(dbeta)?,
            self.opnd_mut(scratch)?,
            pdx,
        ];
        self.go::<E>(&batch_norm_bwd(d, gacc, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let bn = BatchNormDims {
            batch: 2,
            channels: 3,
            spatial: 4,
            eps: 1e-5,
        };
        check_plans(
            &MODULE,
            &[
                batch_norm_stats(&bn),
                batch_norm_running(&bn, 0.1),
                batch_norm_fwd(&bn),
                batch_norm_bwd(&bn, Acc::Set, Some(Acc::Add)),
            ],
        );
    }
}

//! LayerNorm over the last dimension (`layernorm.cu`): the kernels, their
//! plans and [`Cuda`]'s `LayerNormKernels` (the trait, its formulas and the CPU
//! bodies are in kiln-core's `layers/layernorm.rs`).

use super::family::*;
use kiln_core::layers::{LayerNormDims, LayerNormKernels};

kernels! {
    layernorm = include_str!("layernorm.cu");
    LAYER_NORM_FWD = layer_norm_fwd(In, In, In, Out, Out, U64, U64, Real, I32);
    LAYER_NORM_BWD = layer_norm_bwd(In, In, In, In, Out, U64, U64, I32, I32);
    LAYER_NORM_PARAM_BWD = layer_norm_param_bwd(In, In, In, Out, Out, U64, U64, I32, I32);
}

/// Layer normalisation, one warp per row; `flags` bit 0: γ given, bit 1: β
/// given. Operands: `[x, gamma, beta, y, stats]`.
pub fn layer_norm_fwd(d: &LayerNormDims, flags: i32) -> Plan {
    Plan::one(Launch::new(
        &LAYER_NORM_FWD,
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
            &LAYER_NORM_PARAM_BWD,
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
            &LAYER_NORM_BWD,
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

impl<E: Elem> LayerNormKernels<E> for Cuda {
    fn raw_layer_norm_fwd(
        &self,
        d: &LayerNormDims,
        x: &Buf<E>,
        gamma: Option<&Buf<E>>,
        beta: Option<&Buf<E>>,
        y: &mut Buf<E>,
        stats: &mut Buf<E>,
    ) -> Result<()> {
        if d.rows * d.cols == 0 {
            return Ok(());
        }
        let none = Opnd { addr: 0, esize: 0 };
        let flags = gamma.is_some() as i32 | (beta.is_some() as i32) << 1;
        let ops = [
            self.opnd(x)?,
            gamma.map_or(Ok(none), |g| self.opnd(g))?,
            beta.map_or(Ok(none), |b| self.opnd(b))?,
            self.opnd_mut(y)?,
            self.opnd_mut(stats)?,
        ];
        self.go::<E>(&layer_norm_fwd(d, flags), &ops)
    }

    fn raw_layer_norm_bwd(
        &self,
        d: &LayerNormDims,
        x: &Buf<E>,
        stats: &Buf<E>,
        gamma: Option<&Buf<E>>,
        dy: &Buf<E>,
        dx: Option<(&mut Buf<E>, Acc)>,
        dgamma: Option<&mut Buf<E>>,
        dbeta: Option<&mut Buf<E>>,
        gacc: Acc,
    ) -> Result<()> {
        if d.cols == 0 {
            return Ok(());
        }
        let none = Opnd { addr: 0, esize: 0 };
        let flags =
            dgamma.is_some() as i32 | (dbeta.is_some() as i32) << 1 | (gamma.is_some() as i32) << 2;
        let (pdx, acc) = match dx {
            Some((b, acc)) if d.rows > 0 => (self.opnd_mut(b)?, Some(acc)),
            _ => (none, None),
        };
        let ops = [
            self.opnd(x)?,
            self.opnd(stats)?,
            gamma.map_or(Ok(none), |g| self.opnd(g))?,
            self.opnd(dy)?,
            pdx,
            dgamma.map_or(Ok(none), |g| self.opnd_mut(g))?,
            dbeta.map_or(Ok(none), |b| self.opnd_mut(b))?,
        ];
        self.go::<E>(&layer_norm_bwd(d, flags, gacc, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let ld = LayerNormDims {
            rows: 5,
            cols: 40,
            eps: 1e-5,
        };
        check_plans(
            &MODULE,
            &[
                layer_norm_fwd(&ld, 3),
                layer_norm_bwd(&ld, 7, Acc::Set, Some(Acc::Add)),
            ],
        );
    }
}

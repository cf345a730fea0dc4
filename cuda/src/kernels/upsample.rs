//! Nearest and bilinear upsampling (`upsample.cu`): the kernels, their
//! plans and [`Cuda`]'s `UpsampleKernels`.

use super::family::*;

kernels! {
    upsample = include_str!("upsample.cu");
    UPSAMPLE2D_FWD = upsample2d_fwd(In, Out, U64, U64, U64, U64, U64, I32);
    UPSAMPLE2D_BWD = upsample2d_bwd(In, Out, U64, U64, U64, U64, U64, I32, I32);
}

fn resize_args(g: &Resize2d, batch: usize) -> [Arg; 6] {
    [
        Arg::U64((batch * g.channels) as u64),
        Arg::U64(g.h as u64),
        Arg::U64(g.w as u64),
        Arg::U64(g.oh as u64),
        Arg::U64(g.ow as u64),
        Arg::I32((g.mode == UpsampleMode::Bilinear) as i32),
    ]
}

/// Upsampling. Operands: `[x, y]`.
pub fn upsample2d_fwd(g: &Resize2d, batch: usize) -> Plan {
    let [p, h, w, oh, ow, m] = resize_args(g, batch);
    elementwise(
        &UPSAMPLE2D_FWD,
        batch * g.channels * g.oh * g.ow,
        &[Arg::Buf(0, 0), Arg::Buf(1, 0), p, h, w, oh, ow, m],
    )
}

/// Upsampling's backward. Operands: `[dy, dx]`.
pub fn upsample2d_bwd(g: &Resize2d, batch: usize, acc: Acc) -> Plan {
    let [p, h, w, oh, ow, m] = resize_args(g, batch);
    elementwise(
        &UPSAMPLE2D_BWD,
        batch * g.channels * g.h * g.w,
        &[
            Arg::Buf(0, 0),
            Arg::Buf(1, 0),
            p,
            h,
            w,
            oh,
            ow,
            m,
            Arg::I32(acc_flag(acc)),
        ],
    )
}

impl<E: Elem> UpsampleKernels<E> for Cuda {
    fn raw_upsample2d_fwd(
        &self,
        g: &Resize2d,
        x: &Buf<E>,
        y: &mut Buf<E>,
        batch: usize,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&upsample2d_fwd(g, batch), &ops)
    }

    fn raw_upsample2d_bwd(
        &self,
        g: &Resize2d,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&upsample2d_bwd(g, batch, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let rs = Resize2d {
            mode: UpsampleMode::Bilinear,
            channels: 2,
            h: 3,
            w: 4,
            oh: 6,
            ow: 8,
        };
        check_plans(&MODULE, &[upsample2d_fwd(&rs, 2), upsample2d_bwd(&rs, 2, Acc::Set)]);
    }
}

//! Pooling and unpooling (`pool.cu`): max and average pooling, max
//! unpooling and their backwards, their plans and [`Cuda`]'s `PoolKernels`.

use super::family::*;

kernels! {
    pool = include_str!("pool.cu");
    MAX_POOL2D_FWD = max_pool2d_fwd(In, Out, OutU32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
    MAX_UNPOOL2D_FWD = max_unpool2d_fwd(Labels, In, Out, U64, I32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
    MAX_UNPOOL2D_BWD = max_unpool2d_bwd(Labels, In, Out, U64, I32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
    AVG_POOL2D_FWD = avg_pool2d_fwd(In, Out, U64, Real, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
    AVG_POOL2D_BWD = avg_pool2d_bwd(In, Out, U64, Real, I32, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64, U64);
}

/// Max pooling of `batch` images. Operands: `[x, y, indices]`.
pub fn max_pool2d_fwd(g: &Window2d, batch: usize) -> Plan {
    let planes = batch * g.channels;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(planes as u64),
    ];
    windowed(&MAX_POOL2D_FWD, planes * g.out_plane(), head, g)
}

/// Max unpooling (max pooling's backward). Operands: `[indices, src, dst]`.
pub fn max_unpool2d(g: &Window2d, batch: usize, acc: Acc) -> Plan {
    let planes = batch * g.channels;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(planes as u64),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(&MAX_UNPOOL2D_FWD, planes * g.in_plane(), head, g)
}

/// Max unpooling's backward. Operands: `[indices, src, dst]`.
pub fn max_unpool2d_bwd(g: &Window2d, batch: usize, acc: Acc) -> Plan {
    let planes = batch * g.channels;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::Buf(2, 0),
        Arg::U64(planes as u64),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(&MAX_UNPOOL2D_BWD, planes * g.out_plane(), head, g)
}

/// Average pooling (padding counted). Operands: `[x, y]`.
pub fn avg_pool2d_fwd(g: &Window2d, batch: usize) -> Plan {
    let planes = batch * g.channels;
    let inv = 1.0 / (g.kh * g.kw) as f64;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(planes as u64),
        Arg::Real(inv),
    ];
    windowed(&AVG_POOL2D_FWD, planes * g.out_plane(), head, g)
}

/// Average pooling's backward. Operands: `[dy, dx]`.
pub fn avg_pool2d_bwd(g: &Window2d, batch: usize, acc: Acc) -> Plan {
    let planes = batch * g.channels;
    let inv = 1.0 / (g.kh * g.kw) as f64;
    let head = [
        Arg::Buf(0, 0),
        Arg::Buf(1, 0),
        Arg::U64(planes as u64),
        Arg::Real(inv),
        Arg::I32(acc_flag(acc)),
    ];
    windowed(&AVG_POOL2D_BWD, planes * g.in_plane(), head, g)
}

impl<E: Elem> PoolKernels<E> for Cuda {
    fn raw_max_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Buf<E>,
        y: &mut Buf<E>,
        indices: &mut Buf<u32>,
        batch: usize,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(y)?, self.opnd_mut(indices)?];
        self.go::<E>(&max_pool2d_fwd(g, batch), &ops)
    }

    fn raw_max_unpool2d(
        &self,
        g: &Window2d,
        indices: &Buf<u32>,
        src: &Buf<E>,
        dst: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(indices)?, self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&max_unpool2d(g, batch, acc), &ops)
    }

    fn raw_max_unpool2d_bwd(
        &self,
        g: &Window2d,
        indices: &Buf<u32>,
        src: &Buf<E>,
        dst: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(indices)?, self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&max_unpool2d_bwd(g, batch, acc), &ops)
    }

    fn raw_avg_pool2d_fwd(
        &self,
        g: &Window2d,
        x: &Buf<E>,
        y: &mut Buf<E>,
        batch: usize,
    ) -> Result<()> {
        let ops = [self.opnd(x)?, self.opnd_mut(y)?];
        self.go::<E>(&avg_pool2d_fwd(g, batch), &ops)
    }

    fn raw_avg_pool2d_bwd(
        &self,
        g: &Window2d,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        batch: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [self.opnd(dy)?, self.opnd_mut(dx)?];
        self.go::<E>(&avg_pool2d_bwd(g, batch, acc), &ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_kernels_and_use_each() {
        let g = Window2d::new("test", 2, (6, 5), (3, 2), (2, 1), (1, 0), (1, 2)).unwrap();
        check_plans(
            &MODULE,
            &[
                max_pool2d_fwd(&g, 2),
                max_unpool2d(&g, 2, Acc::Set),
                max_unpool2d_bwd(&g, 2, Acc::Set),
                avg_pool2d_fwd(&g, 2),
                avg_pool2d_bwd(&g, 2, Acc::Add),
            ],
        );
    }
}

//! [`Cuda`]'s core trait: the `raw_` bodies of `Backend<E>` (memory, GEMM,
//! bias, the element-wise functions, sums). Arguments and lengths were checked
//! by the trait's provided methods (once for every device); each body builds a
//! launch plan and runs it. The kernel families' bodies are in their own
//! files, `kernels/<family>.rs`, beside their CUDA sources.

use crate::device::Opnd;
use crate::kernels::bias::{bias_bwd, bias_fwd};
use crate::kernels::elementwise::{add, axpy, copy_block, fill};
use crate::kernels::unary::{act_bwd, act_fwd, bias_act_bwd, bias_act_fwd};
use crate::kernels::Dtype;
use crate::plan::Plan;
use crate::Cuda;
use kiln_core::device::Block;
use kiln_core::{Acc, Act, Backend, Elem, Error, Gemm, GemmBatched, Result, Scalar};

type Buf<T> = crate::CudaBuf<T>;

/// The kernel dtype of `E`.
pub(crate) fn dtype<E: Elem>() -> Result<Dtype> {
    match (E::NAME, std::mem::size_of::<E>()) {
        ("f32", 4) => Ok(Dtype::F32),
        ("f64", 8) => Ok(Dtype::F64),
        _ => Err(Error::invalid(
            "cuda",
            format!(
                "element type {} has no CUDA kernels (f32 and f64 do)",
                E::NAME
            ),
        )),
    }
}

impl Cuda {
    pub(crate) fn go<E: Elem>(&self, p: &Plan, ops: &[Opnd]) -> Result<()> {
        self.run(dtype::<E>()?, p, ops).map(|_| ())
    }
}

impl<E: Elem> Backend<E> for Cuda {
    fn zeros<T: Scalar>(&self, n: usize) -> Result<Buf<T>> {
        self.alloc(n)
    }
    fn len<T: Scalar>(&self, buf: &Buf<T>) -> usize {
        buf.len()
    }
    fn resize<T: Scalar>(&self, buf: &mut Buf<T>, n: usize) -> Result<()> {
        Cuda::resize(self, buf, n)
    }
    fn upload<T: Scalar>(&self, src: &[T], dst: &mut Buf<T>) -> Result<()> {
        Cuda::upload(self, src, dst)
    }
    fn download<T: Scalar>(&self, src: &Buf<T>, dst: &mut [T]) -> Result<()> {
        Cuda::download(self, src, dst)
    }
    fn raw_copy(&self, src: &Buf<E>, dst: &mut Buf<E>, n: usize) -> Result<()> {
        self.copy_elems(src, dst, n)
    }
    fn raw_fill(&self, dst: &mut Buf<E>, n: usize, v: E) -> Result<()> {
        let d = self.opnd_mut(dst)?;
        self.go::<E>(&fill(n, v.f64()), &[d])
    }

    fn raw_gemm(&self, g: &Gemm, a: &Buf<E>, b: &Buf<E>, c: &mut Buf<E>) -> Result<()> {
        let lens = [a.len(), b.len(), c.len()];
        let (pa, pb, pc) = (self.opnd(a)?, self.opnd(b)?, self.opnd_mut(c)?);
        self.gemm_raw(dtype::<E>()?, g, pa, pb, pc, lens)
    }
    fn raw_gemm_batched(
        &self,
        g: &GemmBatched,
        a: &Buf<E>,
        b: &Buf<E>,
        c: &mut Buf<E>,
    ) -> Result<()> {
        let lens = [a.len(), b.len(), c.len()];
        let (pa, pb, pc) = (self.opnd(a)?, self.opnd(b)?, self.opnd_mut(c)?);
        self.gemm_batched_raw(dtype::<E>()?, g, pa, pb, pc, lens)
    }
    fn raw_add_bias(&self, y: &mut Buf<E>, b: &Buf<E>, rows: usize, cols: usize) -> Result<()> {
        let (pb, py) = (self.opnd(b)?, self.opnd_mut(y)?);
        self.go::<E>(&bias_fwd(rows, cols), &[py, pb])
    }
    fn raw_bias_grad(
        &self,
        dy: &Buf<E>,
        db: &mut Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let (pdy, pdb) = (self.opnd(dy)?, self.opnd_mut(db)?);
        self.go::<E>(&bias_bwd(rows, cols, acc), &[pdy, pdb])
    }

    fn raw_act_fwd(&self, f: Act, x: &Buf<E>, y: &mut Buf<E>, n: usize) -> Result<()> {
        let (px, py) = (self.opnd(x)?, self.opnd_mut(y)?);
        self.go::<E>(&act_fwd(f, n), &[px, py])
    }
    fn raw_act_bwd(
        &self,
        f: Act,
        x: &Buf<E>,
        y: &Buf<E>,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        n: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [
            self.opnd(x)?,
            self.opnd(y)?,
            self.opnd(dy)?,
            self.opnd_mut(dx)?,
        ];
        self.go::<E>(&act_bwd(f, n, acc), &ops)
    }
    fn raw_bias_act_fwd(
        &self,
        f: Act,
        x: &mut Buf<E>,
        b: &Buf<E>,
        y: &mut Buf<E>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let ops = [self.opnd_mut(x)?, self.opnd(b)?, self.opnd_mut(y)?];
        self.go::<E>(&bias_act_fwd(f, rows, cols), &ops)
    }
    fn raw_bias_act_bwd(
        &self,
        f: Act,
        x: &Buf<E>,
        y: &Buf<E>,
        dy: &Buf<E>,
        dx: &mut Buf<E>,
        db: &mut Buf<E>,
        rows: usize,
        cols: usize,
        acc: Acc,
    ) -> Result<()> {
        let ops = [
            self.opnd(x)?,
            self.opnd(y)?,
            self.opnd(dy)?,
            self.opnd_mut(dx)?,
            self.opnd_mut(db)?,
        ];
        self.go::<E>(&bias_act_bwd(f, rows, cols, acc), &ops)
    }
    fn raw_add(&self, a: &Buf<E>, b: &Buf<E>, y: &mut Buf<E>, n: usize) -> Result<()> {
        let ops = [self.opnd(a)?, self.opnd(b)?, self.opnd_mut(y)?];
        self.go::<E>(&add(n), &ops)
    }
    fn raw_axpy(&self, alpha: E, src: &Buf<E>, dst: &mut Buf<E>, n: usize, acc: Acc) -> Result<()> {
        let ops = [self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&axpy(alpha.f64(), n, acc), &ops)
    }
    fn raw_copy_block(&self, b: &Block, src: &Buf<E>, dst: &mut Buf<E>, acc: Acc) -> Result<()> {
        let ops = [self.opnd(src)?, self.opnd_mut(dst)?];
        self.go::<E>(&copy_block(b, acc), &ops)
    }

    // ---- training toolkit ------------------------------------------------------------

    fn raw_sum_sq(&self, x: &Buf<E>, n: usize) -> Result<f64> {
        self.sum_f64(x, n, false)
    }
    fn raw_sum_abs(&self, x: &Buf<E>, n: usize) -> Result<f64> {
        self.sum_f64(x, n, true)
    }
}

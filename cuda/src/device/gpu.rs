//! What [`Gpu`] does on a real device: loads (and caches) NVRTC-compiled
//! modules and their functions, launches a plan's kernels on the stream,
//! reads back a plan's scalar result, and calls cuBLAS for the products. The
//! host emulation's counterparts are in the parent module; both run the same
//! plans.

use super::*;

impl Gpu {
    pub(super) fn err(&self, what: &str, msg: String) -> Error {
        Error::Device {
            device: self.label.clone(),
            msg: format!("{what}: {msg}"),
        }
    }

    /// The compiled module `name`, compiling it with NVRTC on first use.
    pub(super) fn module(&self, name: &'static str) -> Result<Arc<CudaModule>> {
        let mut mods = lock(&self.modules);
        if let Some(m) = mods.get(name) {
            return Ok(m.clone());
        }
        let module = kernels::module(name).ok_or_else(|| {
            self.err(
                "kernel lookup",
                format!("kiln internal error: no module {name}"),
            )
        })?;
        let ptx = compile_ptx(module, Some(self.arch))
            .map_err(|m| self.err(&format!("NVRTC compiling {name}.cu"), m))?;
        let m = self
            .ctx
            .load_module(ptx)
            .map_err(|e| self.err(&format!("loading module {name}"), driver_msg(&e)))?;
        mods.insert(name, m.clone());
        Ok(m)
    }

    pub(super) fn function(&self, k: &'static Kernel, dt: Dtype) -> Result<CudaFunction> {
        let sym = k.symbol(dt);
        if let Some(f) = lock(&self.functions).get(sym) {
            return Ok(f.clone());
        }
        let f = self
            .module(k.module)?
            .load_function(sym)
            .map_err(|e| self.err(&format!("loading kernel {sym}"), driver_msg(&e)))?;
        lock(&self.functions).insert(sym, f.clone());
        Ok(f)
    }

    pub(super) fn launch(&self, dt: Dtype, l: &crate::plan::Launch, ops: &[Opnd]) -> Result<()> {
        l.check().map_err(|m| self.err("launch", m))?;
        let dt = l.dtype.unwrap_or(dt);
        let f = self.function(l.kernel, dt)?;
        const N: usize = crate::plan::MAX_ARGS;
        let (mut u, mut i, mut s, mut d) = ([0u64; N], [0i32; N], [0f32; N], [0f64; N]);
        let mut kinds = [0u8; N];
        fill_args(l.args(), ops, |j, v| match v {
            Val::U64(x) => {
                u[j] = x;
                kinds[j] = 0;
            }
            Val::I32(x) => {
                i[j] = x;
                kinds[j] = 1;
            }
            Val::Real(x) => {
                s[j] = x as f32;
                d[j] = x;
                kinds[j] = 2;
            }
        })?;
        // cuLaunchKernel directly with a stack array of argument pointers:
        // cudarc's launch builder collects them in a Vec, and a training step
        // must not allocate.
        let mut params = [std::ptr::null_mut::<std::ffi::c_void>(); N];
        for j in 0..l.args().len() {
            params[j] = match (kinds[j], dt) {
                (0, _) => &mut u[j] as *mut u64 as *mut std::ffi::c_void,
                (1, _) => &mut i[j] as *mut i32 as *mut std::ffi::c_void,
                (_, Dtype::F32) => &mut s[j] as *mut f32 as *mut std::ffi::c_void,
                (_, Dtype::F64) => &mut d[j] as *mut f64 as *mut std::ffi::c_void,
            };
        }
        self.ctx
            .bind_to_thread()
            .map_err(|e| self.err("launch", driver_msg(&e)))?;
        // SAFETY: the arguments match the kernel's parameters in number and type
        // (checked above against the registry, and the registry against the
        // sources by the NVRTC and shim tests); every pointer addresses a live
        // buffer long enough for the sizes passed (checked by the Backend method
        // that built the plan); the values outlive the call.
        unsafe {
            cudarc::driver::result::launch_kernel(
                f.cu_function(),
                (l.grid, 1, 1),
                (l.block, 1, 1),
                0,
                self.stream.cu_stream(),
                &mut params[..l.args().len()],
            )
        }
        .map_err(|e| {
            self.err(
                &format!("launching {}", l.kernel.symbol(dt)),
                driver_msg(&e),
            )
        })?;
        Ok(())
    }

    pub(super) fn gemm(&self, dt: Dtype, x: &CublasArgs, a: Opnd, b: Opnd, c: Opnd) -> Result<()> {
        use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        let int = |v: usize| {
            i32::try_from(v).map_err(|_| {
                self.err(
                    "gemm",
                    format!("dimension {v} exceeds cuBLAS's 32-bit limit"),
                )
            })
        };
        let (m, n, k, lda, ldb, ldc) = (
            int(x.m)?,
            int(x.n)?,
            int(x.k)?,
            int(x.lda)?,
            int(x.ldb)?,
            int(x.ldc)?,
        );
        let h = *self.blas.handle();
        self.ctx
            .bind_to_thread()
            .map_err(|e| self.err("gemm", driver_msg(&e)))?;
        let es = dt.size() as u64;
        let (pa, pb, pc) = (
            a.addr + x.a_off as u64 * es,
            b.addr + x.b_off as u64 * es,
            c.addr + x.c_off as u64 * es,
        );
        // SAFETY: the pointers address live device buffers long enough for the
        // product (checked by the caller); the handle is bound to our stream.
        let r = unsafe {
            match dt {
                Dtype::F32 => {
                    let (al, be) = (x.alpha as f32, x.beta as f32);
                    cudarc::cublas::result::sgemm(
                        h,
                        op(x.transa),
                        op(x.transb),
                        m,
                        n,
                        k,
                        &al,
                        pa as *const f32,
                        lda,
                        pb as *const f32,
                        ldb,
                        &be,
                        pc as *mut f32,
                        ldc,
                    )
                }
                Dtype::F64 => {
                    let (al, be) = (x.alpha, x.beta);
                    cudarc::cublas::result::dgemm(
                        h,
                        op(x.transa),
                        op(x.transb),
                        m,
                        n,
                        k,
                        &al,
                        pa as *const f64,
                        lda,
                        pb as *const f64,
                        ldb,
                        &be,
                        pc as *mut f64,
                        ldc,
                    )
                }
            }
        };
        r.map_err(|e| self.err("cuBLAS gemm", format!("{:?}", e.0)))
    }
}

impl Gpu {
    pub(super) fn gemm_batched(
        &self,
        dt: Dtype,
        x: &CublasBatchedArgs,
        a: Opnd,
        b: Opnd,
        c: Opnd,
    ) -> Result<()> {
        use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        let int = |v: usize| {
            i32::try_from(v).map_err(|_| {
                self.err(
                    "gemm_batched",
                    format!("size {v} exceeds cuBLAS's 32-bit limit"),
                )
            })
        };
        let long = |v: usize| {
            i64::try_from(v).map_err(|_| {
                self.err(
                    "gemm_batched",
                    format!("stride {v} exceeds cuBLAS's 64-bit limit"),
                )
            })
        };
        let y = &x.args;
        let (m, n, k, lda, ldb, ldc, batch) = (
            int(y.m)?,
            int(y.n)?,
            int(y.k)?,
            int(y.lda)?,
            int(y.ldb)?,
            int(y.ldc)?,
            int(x.batch)?,
        );
        let (sa, sb, sc) = (long(x.stride_a)?, long(x.stride_b)?, long(x.stride_c)?);
        let h = *self.blas.handle();
        self.ctx
            .bind_to_thread()
            .map_err(|e| self.err("gemm_batched", driver_msg(&e)))?;
        let es = dt.size() as u64;
        let (pa, pb, pc) = (
            a.addr + y.a_off as u64 * es,
            b.addr + y.b_off as u64 * es,
            c.addr + y.c_off as u64 * es,
        );
        // SAFETY: the pointers address live device buffers long enough for
        // every product of the batch (`GemmBatched::check`, made by the
        // caller), C's products do not overlap (same check); the handle is
        // bound to our stream.
        let r = unsafe {
            match dt {
                Dtype::F32 => {
                    let (al, be) = (y.alpha as f32, y.beta as f32);
                    cudarc::cublas::result::sgemm_strided_batched(
                        h,
                        op(y.transa),
                        op(y.transb),
                        m,
                        n,
                        k,
                        &al,
                        pa as *const f32,
                        lda,
                        sa,
                        pb as *const f32,
                        ldb,
                        sb,
                        &be,
                        pc as *mut f32,
                        ldc,
                        sc,
                        batch,
                    )
                }
                Dtype::F64 => {
                    let (al, be) = (y.alpha, y.beta);
                    cudarc::cublas::result::dgemm_strided_batched(
                        h,
                        op(y.transa),
                        op(y.transb),
                        m,
                        n,
                        k,
                        &al,
                        pa as *const f64,
                        lda,
                        sa,
                        pb as *const f64,
                        ldb,
                        sb,
                        &be,
                        pc as *mut f64,
                        ldc,
                        sc,
                        batch,
                    )
                }
            }
        };
        r.map_err(|e| self.err("cuBLAS gemm_batched", format!("{:?}", e.0)))
    }
}

//! The [`Cuda`] device: context, stream, cuBLAS handle and the kernel cache
//! behind one `Arc`; buffers; running launch plans.

use crate::blas::{self, CublasArgs, CublasBatchedArgs, Operand};
use crate::emulate::{HostShim, KArg};
use crate::kernels::{self, Dtype, Kernel};
use crate::libs::{self, Lib};
use crate::plan::{Arg, Plan};
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr};
use kiln_core::{Device, Error, Gemm, GemmBatched, Result, Scalar};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

// The GPU half of the executor: module loading, launches, cuBLAS calls.
mod gpu;

/// An NVIDIA GPU, driven through cudarc: kernels compiled from kiln's CUDA C
/// sources by NVRTC (once per process, cached by module), matrix products by
/// cuBLAS, everything queued on one stream.
///
/// Cloning is cheap (an `Arc`); clones share the context, stream, cuBLAS
/// handle and compiled modules.
///
/// ```no_run
/// # fn main() -> kiln_core::Result<()> {
/// let dev = kiln_cuda::Cuda::new(0)?; // an Error::Device, never a panic, without a GPU
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cuda {
    inner: Arc<Inner>,
}

enum Inner {
    Gpu(Gpu),
    Host(HostShim),
}

pub(crate) struct Gpu {
    ordinal: usize,
    label: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: cudarc::cublas::CudaBlas,
    arch: &'static str,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    functions: Mutex<HashMap<&'static str, CudaFunction>>,
    scratch: Mutex<Option<CudaSlice<u8>>>,
}

/// A buffer of `T` on a [`Cuda`] device: a byte allocation (cudarc's typed
/// slices need `T: DeviceRepr`, which kiln's `Scalar` cannot promise), its
/// length and its capacity in elements. Like a `Vec`, it keeps its capacity
/// when shrunk and regrown.
pub struct CudaBuf<T: Scalar> {
    mem: Mem,
    len: usize,
    cap: usize,
    _t: PhantomData<T>,
}

pub(crate) enum Mem {
    /// Nothing allocated (capacity 0).
    Empty,
    /// Device memory of `cap · size_of::<T>()` bytes.
    Dev(CudaSlice<u8>),
    /// Host memory of the emulated device (8-byte aligned words).
    Host(Vec<u64>),
}

impl<T: Scalar> fmt::Debug for CudaBuf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match self.mem {
            Mem::Empty => "empty",
            Mem::Dev(_) => "device",
            Mem::Host(_) => "host-emulated",
        };
        write!(
            f,
            "CudaBuf<{}> {{ len: {}, cap: {}, {place} }}",
            T::NAME,
            self.len,
            self.cap
        )
    }
}

impl<T: Scalar> CudaBuf<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Elements that fit without reallocating.
    pub fn capacity(&self) -> usize {
        self.cap
    }
}

impl fmt::Debug for Cuda {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cuda({})", self.name())
    }
}

impl Device for Cuda {
    type Buf<T: Scalar> = CudaBuf<T>;
    fn name(&self) -> String {
        match &*self.inner {
            Inner::Gpu(g) => format!("cuda:{}", g.ordinal),
            Inner::Host(_) => "cuda-emulated".into(),
        }
    }
}

/// A raw operand of a launch: address and element size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opnd {
    pub addr: u64,
    pub esize: usize,
}

/// Bytes per element of `T`, for the plain types buffers may hold.
fn esize<T: Scalar>() -> Result<usize> {
    let s = std::mem::size_of::<T>();
    match (T::NAME, s) {
        ("f32", 4) | ("u32", 4) | ("f64", 8) => Ok(s),
        _ => Err(Error::invalid(
            "cuda buffer",
            format!(
                "element type {} is not supported by the CUDA device",
                T::NAME
            ),
        )),
    }
}

/// The bytes of a host slice of plain values (checked by [`esize`]).
fn bytes_of<T: Scalar>(s: &[T]) -> Result<&[u8]> {
    let n = esize::<T>()? * s.len();
    // SAFETY: T is f32, f64 or u32 (checked): no padding, any bytes valid.
    Ok(unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, n) })
}
fn bytes_of_mut<T: Scalar>(s: &mut [T]) -> Result<&mut [u8]> {
    let n = esize::<T>()? * s.len();
    // SAFETY: as above; every bit pattern is a valid f32, f64 or u32.
    Ok(unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut u8, n) })
}

fn lock<X>(m: &Mutex<X>) -> MutexGuard<'_, X> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a cudarc call, turning a panic inside it (cudarc panics when a library
/// or symbol is missing) into an error.
fn guarded<R>(what: &str, device: &str, f: impl FnOnce() -> R) -> Result<R> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        Error::Device {
            device: device.into(),
            msg: format!("{what}: {msg}"),
        }
    })
}

fn driver_msg(e: &cudarc::driver::DriverError) -> String {
    // Not `{e:?}`: DriverError's Debug asks the driver for a description,
    // which a broken or fake driver may not provide.
    let hint = match e.0 {
        cudarc::driver::sys::CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => {
            " (the PTX comes from an NVRTC newer than the driver: use NVRTC 13.0 with driver 580)"
        }
        cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE => " (no CUDA-capable GPU is visible)",
        _ => "",
    };
    format!("{:?}{hint}", e.0)
}

impl Cuda {
    /// Opens GPU `ordinal`: checks that the driver library can be loaded,
    /// creates the context, checks for the NVRTC and cuBLAS libraries, creates
    /// one stream and the cuBLAS handle.
    /// Fails with [`Error::Device`] (naming the missing library, or the driver's
    /// error) when there is no GPU; never panics.
    pub fn new(ordinal: usize) -> Result<Cuda> {
        let label = format!("cuda:{ordinal}");
        // The driver first: no driver or no GPU is the most basic failure.
        libs::require(Lib::Driver, &label)?;
        libs::driver_init(&label)?;
        let err = |what: &str, msg: String| Error::Device {
            device: label.clone(),
            msg: format!("{what}: {msg}"),
        };
        let ctx = guarded("creating the CUDA context", &label, || {
            CudaContext::new(ordinal)
        })?
        .map_err(|e| err("creating the CUDA context", driver_msg(&e)))?;
        libs::require(Lib::Nvrtc, &label)?;
        libs::require(Lib::Cublas, &label)?;
        // One stream does everything, so cudarc's per-buffer events are not needed.
        // SAFETY: no other stream of this context touches kiln's buffers.
        unsafe { ctx.disable_event_tracking() };
        let stream = guarded("creating the stream", &label, || ctx.new_stream())?
            .map_err(|e| err("creating the stream", driver_msg(&e)))?;
        let blas = guarded("creating the cuBLAS handle", &label, || {
            cudarc::cublas::CudaBlas::new(stream.clone())
        })?
        .map_err(|e| err("creating the cuBLAS handle", format!("{:?}", e.0)))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| err("reading the compute capability", driver_msg(&e)))?;
        let arch: &'static str = Box::leak(format!("compute_{major}{minor}").into_boxed_str());
        Ok(Cuda {
            inner: Arc::new(Inner::Gpu(Gpu {
                ordinal,
                label,
                ctx,
                stream,
                blas,
                arch,
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                scratch: Mutex::new(None),
            })),
        })
    }

    /// A CUDA device emulated on the host, for testing without a GPU: buffers
    /// live in host memory, kernels run from the same CUDA C sources compiled
    /// for the CPU against the host shim (`cuda/tests/shim`, one host thread
    /// per CUDA thread), loaded from the shared library `shim_lib` built by
    /// [`crate::emulate::build`]; products run the column-major reference on
    /// exactly the arguments cuBLAS would get. Everything else (checks, launch
    /// plans, scratch memory) is the code the GPU runs.
    pub fn emulated(shim_lib: &Path) -> Result<Cuda> {
        Ok(Cuda {
            inner: Arc::new(Inner::Host(HostShim::open(shim_lib)?)),
        })
    }

    /// The kernels launched so far by an emulated device (symbols), to check
    /// that tests leave none unexecuted. Empty on a GPU.
    pub fn executed_kernels(&self) -> Vec<&'static str> {
        match &*self.inner {
            Inner::Gpu(_) => Vec::new(),
            Inner::Host(h) => h.executed(),
        }
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<()> {
        match &*self.inner {
            Inner::Gpu(g) => g
                .stream
                .synchronize()
                .map_err(|e| g.err("synchronize", driver_msg(&e))),
            Inner::Host(_) => Ok(()),
        }
    }

    /// The GPU's name and compute capability, e.g. `NVIDIA H100 80GB HBM3 (sm_90)`.
    pub fn describe(&self) -> String {
        match &*self.inner {
            Inner::Gpu(g) => format!(
                "{} ({})",
                g.ctx.name().unwrap_or_else(|_| "?".into()),
                g.arch.replace("compute_", "sm_")
            ),
            Inner::Host(_) => "host emulation of kiln's CUDA kernels".into(),
        }
    }

    /// Compiles every kernel module now (normally done on first use).
    pub fn compile_all(&self) -> Result<usize> {
        match &*self.inner {
            Inner::Gpu(g) => {
                for m in kernels::MODULES {
                    g.module(m.name)?;
                }
                Ok(kernels::MODULES.len())
            }
            Inner::Host(_) => Ok(0),
        }
    }

    // ---- memory ------------------------------------------------------------------

    pub(crate) fn alloc<T: Scalar>(&self, n: usize) -> Result<CudaBuf<T>> {
        let es = esize::<T>()?;
        let too_big = |why: String| Error::Device {
            device: self.name(),
            msg: format!("cannot allocate {n} elements of {es} bytes: {why}"),
        };
        let bytes = n
            .checked_mul(es)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| too_big("more than isize::MAX bytes".into()))?;
        let mem =
            if n == 0 {
                Mem::Empty
            } else {
                match &*self.inner {
                    Inner::Gpu(g) => Mem::Dev(g.stream.alloc_zeros::<u8>(bytes).map_err(|e| {
                        g.err("alloc", format!("{bytes} bytes: {}", driver_msg(&e)))
                    })?),
                    Inner::Host(_) => {
                        let words = bytes.div_ceil(8);
                        let mut v = Vec::new();
                        v.try_reserve_exact(words)
                            .map_err(|e| too_big(format!("{bytes} bytes: {e}")))?;
                        v.resize(words, 0u64);
                        Mem::Host(v)
                    }
                }
            };
        Ok(CudaBuf {
            mem,
            len: n,
            cap: n,
            _t: PhantomData,
        })
    }

    /// Zeroes bytes `from..to` of `mem`.
    fn zero_bytes(&self, mem: &mut Mem, from: usize, to: usize) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        match (&*self.inner, mem) {
            (Inner::Gpu(g), Mem::Dev(s)) => g
                .stream
                .memset_zeros(&mut s.slice_mut(from..to))
                .map_err(|e| g.err("memset", driver_msg(&e))),
            (_, Mem::Host(v)) => {
                host_bytes_mut(v)[from..to].fill(0);
                Ok(())
            }
            _ => Err(self.foreign()),
        }
    }

    pub(crate) fn resize<T: Scalar>(&self, buf: &mut CudaBuf<T>, n: usize) -> Result<()> {
        let es = esize::<T>()?;
        if n <= buf.cap {
            if n > buf.len {
                self.zero_bytes(&mut buf.mem, buf.len * es, n * es)?;
            }
            buf.len = n;
            return Ok(());
        }
        let mut fresh = self.alloc::<T>(n)?;
        let keep = buf.len * es;
        if keep > 0 {
            match (&*self.inner, &buf.mem, &mut fresh.mem) {
                (Inner::Gpu(g), Mem::Dev(old), Mem::Dev(new)) => g
                    .stream
                    .memcpy_dtod(&old.slice(0..keep), &mut new.slice_mut(0..keep))
                    .map_err(|e| g.err("resize copy", driver_msg(&e)))?,
                (_, Mem::Host(old), Mem::Host(new)) => {
                    host_bytes_mut(new)[..keep].copy_from_slice(&host_bytes(old)[..keep])
                }
                _ => return Err(self.foreign()),
            }
        }
        *buf = fresh;
        Ok(())
    }

    pub(crate) fn upload<T: Scalar>(&self, src: &[T], dst: &mut CudaBuf<T>) -> Result<()> {
        need("upload", dst.len, src.len())?;
        let b = bytes_of(src)?;
        if b.is_empty() {
            return Ok(());
        }
        match (&*self.inner, &mut dst.mem) {
            (Inner::Gpu(g), Mem::Dev(s)) => g
                .stream
                .memcpy_htod(b, &mut s.slice_mut(0..b.len()))
                .map_err(|e| g.err("upload", driver_msg(&e))),
            (_, Mem::Host(v)) => {
                host_bytes_mut(v)[..b.len()].copy_from_slice(b);
                Ok(())
            }
            _ => Err(self.foreign()),
        }
    }

    pub(crate) fn download<T: Scalar>(&self, src: &CudaBuf<T>, dst: &mut [T]) -> Result<()> {
        need("download", src.len, dst.len())?;
        let b = bytes_of_mut(dst)?;
        if b.is_empty() {
            return Ok(());
        }
        let n = b.len();
        match (&*self.inner, &src.mem) {
            (Inner::Gpu(g), Mem::Dev(s)) => {
                g.stream
                    .memcpy_dtoh(&s.slice(0..n), b)
                    .map_err(|e| g.err("download", driver_msg(&e)))?;
                g.stream
                    .synchronize()
                    .map_err(|e| g.err("download", driver_msg(&e)))
            }
            (_, Mem::Host(v)) => {
                b.copy_from_slice(&host_bytes(v)[..n]);
                Ok(())
            }
            _ => Err(self.foreign()),
        }
    }

    /// `dst[..n] = src[..n]` (a device-to-device copy).
    pub(crate) fn copy_elems<T: Scalar>(
        &self,
        src: &CudaBuf<T>,
        dst: &mut CudaBuf<T>,
        n: usize,
    ) -> Result<()> {
        need("copy src", src.len, n)?;
        need("copy dst", dst.len, n)?;
        let nb = n * esize::<T>()?;
        if nb == 0 {
            return Ok(());
        }
        match (&*self.inner, &src.mem, &mut dst.mem) {
            (Inner::Gpu(g), Mem::Dev(s), Mem::Dev(d)) => g
                .stream
                .memcpy_dtod(&s.slice(0..nb), &mut d.slice_mut(0..nb))
                .map_err(|e| g.err("copy", driver_msg(&e))),
            (_, Mem::Host(s), Mem::Host(d)) => {
                host_bytes_mut(d)[..nb].copy_from_slice(&host_bytes(s)[..nb]);
                Ok(())
            }
            _ => Err(self.foreign()),
        }
    }

    fn foreign(&self) -> Error {
        Error::Device {
            device: self.name(),
            msg: "kiln internal error: a buffer of another device (GPU vs emulated) was passed"
                .into(),
        }
    }

    // ---- launching ---------------------------------------------------------------

    /// The operand for reading `b`.
    pub(crate) fn opnd<T: Scalar>(&self, b: &CudaBuf<T>) -> Result<Opnd> {
        let esize = esize::<T>()?;
        let addr = match (&*self.inner, &b.mem) {
            (_, Mem::Empty) => 0,
            (Inner::Gpu(g), Mem::Dev(s)) => s.device_ptr(&g.stream).0,
            (Inner::Host(_), Mem::Host(v)) => v.as_ptr() as u64,
            _ => return Err(self.foreign()),
        };
        Ok(Opnd { addr, esize })
    }
    /// The operand for writing `b`.
    pub(crate) fn opnd_mut<T: Scalar>(&self, b: &mut CudaBuf<T>) -> Result<Opnd> {
        let esize = esize::<T>()?;
        let addr = match (&*self.inner, &mut b.mem) {
            (_, Mem::Empty) => 0,
            (Inner::Gpu(g), Mem::Dev(s)) => s.device_ptr(&g.stream).0,
            (Inner::Host(_), Mem::Host(v)) => v.as_mut_ptr() as u64,
            _ => return Err(self.foreign()),
        };
        Ok(Opnd { addr, esize })
    }

    /// Runs `plan` on `ops`; when the plan needs scratch memory, the device's
    /// scratch buffer (grown once, then reused) is appended as the last operand,
    /// and the plan's scalar result, if any, is returned.
    pub(crate) fn run(&self, dt: Dtype, plan: &Plan, ops: &[Opnd]) -> Result<Option<f64>> {
        const MAXOPS: usize = 12;
        debug_assert!(ops.len() < MAXOPS);
        let mut all = [Opnd { addr: 0, esize: 0 }; MAXOPS];
        all[..ops.len()].copy_from_slice(ops);
        let nops = ops.len() + (plan.scratch > 0) as usize;
        match &*self.inner {
            Inner::Gpu(g) => {
                let mut scratch = lock(&g.scratch);
                if plan.scratch > 0 {
                    let bytes = plan.scratch * dt.size();
                    if scratch.as_ref().is_none_or(|s| s.len() < bytes) {
                        *scratch = Some(
                            g.stream
                                .alloc_zeros::<u8>(bytes)
                                .map_err(|e| g.err("scratch", driver_msg(&e)))?,
                        );
                    }
                    let Some(s) = scratch.as_ref() else {
                        return Err(g.err(
                            "scratch",
                            "kiln internal error: no scratch buffer after allocating it".into(),
                        ));
                    };
                    all[ops.len()] = Opnd {
                        addr: s.device_ptr(&g.stream).0,
                        esize: dt.size(),
                    };
                }
                for l in plan.launches() {
                    g.launch(dt, l, &all[..nops])?;
                }
                match (plan.result, scratch.as_ref()) {
                    (Some(r), Some(s)) => {
                        let (at, rt) = (r * dt.size(), plan.result_dtype.unwrap_or(dt));
                        let mut host = [0u8; 8];
                        g.stream
                            .memcpy_dtoh(&s.slice(at..at + rt.size()), &mut host[..rt.size()])
                            .map_err(|e| g.err("result download", driver_msg(&e)))?;
                        g.stream
                            .synchronize()
                            .map_err(|e| g.err("result download", driver_msg(&e)))?;
                        Ok(Some(scalar_from_bytes(rt, &host)))
                    }
                    _ => Ok(None),
                }
            }
            Inner::Host(h) => {
                let mut scratch = h.scratch();
                if plan.scratch > 0 {
                    let words = (plan.scratch * dt.size()).div_ceil(8);
                    if scratch.len() < words {
                        scratch.resize(words, 0);
                    }
                    all[ops.len()] = Opnd {
                        addr: scratch.as_mut_ptr() as u64,
                        esize: dt.size(),
                    };
                }
                for l in plan.launches() {
                    l.check().map_err(|m| Error::Device {
                        device: self.name(),
                        msg: m,
                    })?;
                    let mut args = [KArg::default(); crate::plan::MAX_ARGS];
                    fill_args(l.args(), &all[..nops], |i, a| {
                        args[i] = match a {
                            Val::U64(u) => KArg {
                                kind: 0,
                                pad: 0,
                                u,
                                f: 0.0,
                            },
                            Val::I32(v) => KArg {
                                kind: 1,
                                pad: 0,
                                u: v as i64 as u64,
                                f: 0.0,
                            },
                            Val::Real(f) => KArg {
                                kind: 2,
                                pad: 0,
                                u: 0,
                                f,
                            },
                        }
                    })?;
                    h.launch(
                        l.kernel.symbol(l.dtype.unwrap_or(dt)),
                        l.grid,
                        l.block,
                        &args[..l.args().len()],
                    )
                    .map_err(|m| Error::Device {
                        device: self.name(),
                        msg: m,
                    })?;
                }
                Ok(plan.result.map(|r| {
                    let (at, rt) = (r * dt.size(), plan.result_dtype.unwrap_or(dt));
                    scalar_from_bytes(rt, &host_bytes(&scratch)[at..at + rt.size()])
                }))
            }
        }
    }

    /// `Backend::gemm` for element type `dt`: cuBLAS on a GPU, the column-major
    /// reference in emulation, both on [`blas::cublas_args`].
    pub(crate) fn gemm_raw(
        &self,
        dt: Dtype,
        g: &Gemm,
        a: Opnd,
        b: Opnd,
        c: Opnd,
        lens: [usize; 3],
    ) -> Result<()> {
        let x = blas::cublas_args(g);
        let pick = |o: Operand| if o == Operand::A { a } else { b };
        let (pa, pb) = (pick(x.a), pick(x.b));
        match &*self.inner {
            Inner::Gpu(gpu) => gpu.gemm(dt, &x, pa, pb, c),
            Inner::Host(_) => {
                let len = |o: Operand| if o == Operand::A { lens[0] } else { lens[1] };
                // SAFETY: in emulation every operand address is a host `Vec` of
                // `dt`'s element type and of the length in `lens` (taken from the
                // buffers by `Backend::gemm` in backend.rs, which borrows them for
                // this whole call after `Gemm::check` has bounded every index
                // the product touches by those lengths); C came from a `&mut`
                // buffer and A, B from `&` ones, so C aliases neither.
                unsafe {
                    match dt {
                        Dtype::F32 => blas::reference_gemm::<f32>(
                            &x,
                            std::slice::from_raw_parts(pa.addr as *const f32, len(x.a)),
                            std::slice::from_raw_parts(pb.addr as *const f32, len(x.b)),
                            std::slice::from_raw_parts_mut(c.addr as *mut f32, lens[2]),
                        ),
                        Dtype::F64 => blas::reference_gemm::<f64>(
                            &x,
                            std::slice::from_raw_parts(pa.addr as *const f64, len(x.a)),
                            std::slice::from_raw_parts(pb.addr as *const f64, len(x.b)),
                            std::slice::from_raw_parts_mut(c.addr as *mut f64, lens[2]),
                        ),
                    }
                }
                Ok(())
            }
        }
    }
}

impl Cuda {
    /// `Backend::gemm_batched` for element type `dt`: cuBLAS's strided
    /// batched GEMM on a GPU, the column-major reference per product in
    /// emulation, both on [`blas::cublas_batched_args`].
    pub(crate) fn gemm_batched_raw(
        &self,
        dt: Dtype,
        g: &GemmBatched,
        a: Opnd,
        b: Opnd,
        c: Opnd,
        lens: [usize; 3],
    ) -> Result<()> {
        let x = blas::cublas_batched_args(g);
        let pick = |o: Operand| if o == Operand::A { a } else { b };
        let (pa, pb) = (pick(x.args.a), pick(x.args.b));
        match &*self.inner {
            Inner::Gpu(gpu) => gpu.gemm_batched(dt, &x, pa, pb, c),
            Inner::Host(_) => {
                let len = |o: Operand| if o == Operand::A { lens[0] } else { lens[1] };
                // SAFETY: in emulation every operand address is a host `Vec` of
                // `dt`'s element type and of the length in `lens` (taken from the
                // buffers by `Backend::gemm_batched` in backend.rs, which borrows
                // them for this whole call after `GemmBatched::check` has bounded
                // every index of every product by those lengths); C came from a
                // `&mut` buffer and A, B from `&` ones, so C aliases neither.
                unsafe {
                    match dt {
                        Dtype::F32 => blas::reference_gemm_batched::<f32>(
                            &x,
                            std::slice::from_raw_parts(pa.addr as *const f32, len(x.args.a)),
                            std::slice::from_raw_parts(pb.addr as *const f32, len(x.args.b)),
                            std::slice::from_raw_parts_mut(c.addr as *mut f32, lens[2]),
                        ),
                        Dtype::F64 => blas::reference_gemm_batched::<f64>(
                            &x,
                            std::slice::from_raw_parts(pa.addr as *const f64, len(x.args.a)),
                            std::slice::from_raw_parts(pb.addr as *const f64, len(x.args.b)),
                            std::slice::from_raw_parts_mut(c.addr as *mut f64, lens[2]),
                        ),
                    }
                }
                Ok(())
            }
        }
    }
}

/// A kernel argument's value, ready for the ABI.
#[derive(Clone, Copy)]
enum Val {
    U64(u64),
    I32(i32),
    Real(f64),
}

/// Resolves a launch's arguments against the operands.
fn fill_args(args: &[Arg], ops: &[Opnd], mut put: impl FnMut(usize, Val)) -> Result<()> {
    for (i, a) in args.iter().enumerate() {
        let v = match *a {
            Arg::Buf(o, off) => {
                let op = ops.get(o as usize).ok_or_else(|| {
                    Error::invalid(
                        "cuda launch",
                        format!("kiln internal error: operand {o} of {} given", ops.len()),
                    )
                })?;
                Val::U64(if op.addr == 0 {
                    0
                } else {
                    op.addr + off * op.esize as u64
                })
            }
            Arg::U64(u) => Val::U64(u),
            Arg::I32(v) => Val::I32(v),
            Arg::Real(f) => Val::Real(f),
        };
        put(i, v);
    }
    Ok(())
}

fn scalar_from_bytes(dt: Dtype, b: &[u8]) -> f64 {
    match dt {
        Dtype::F32 => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f64,
        Dtype::F64 => f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

fn host_bytes(v: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding; viewing its bytes is always valid.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 8) }
}
fn host_bytes_mut(v: &mut [u64]) -> &mut [u8] {
    // SAFETY: as above; any byte pattern is a valid u64.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, v.len() * 8) }
}

/// The CPU device's length check, with its message.
pub(crate) fn need(what: &'static str, have: usize, n: usize) -> Result<()> {
    if have < n {
        Err(Error::invalid(
            what,
            format!("kiln internal error: buffer holds {have} elements, kernel needs {n}"),
        ))
    } else {
        Ok(())
    }
}

/// Compiles one module with NVRTC (for `arch`, e.g. `compute_90`, or NVRTC's
/// default). The error carries NVRTC's log.
pub fn compile_ptx(
    module: &kernels::Module,
    arch: Option<&'static str>,
) -> std::result::Result<cudarc::nvrtc::Ptx, String> {
    use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions};
    let opts = CompileOptions {
        arch,
        name: Some(format!("{}.cu", module.name)),
        ..Default::default()
    };
    let src = module.full_source();
    let r = catch_unwind(AssertUnwindSafe(|| compile_ptx_with_opts(src, opts)))
        .map_err(|_| "NVRTC panicked (is libnvrtc.so.13 loadable?)".to_string())?;
    r.map_err(|e| match e {
        CompileError::CompileError { nvrtc, log, .. } => {
            format!("{:?}\n{}", nvrtc.0, log.to_string_lossy())
        }
        other => format!("{other:?}"),
    })
}

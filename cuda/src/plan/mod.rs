//! Launch plans: which kernels an operation launches, with which grid and
//! block sizes and which arguments, as plain data.
//!
//! Every `Backend` method of [`crate::Cuda`] is "check lengths, build a plan,
//! run it". Operands are referred to by index into the list of buffers the
//! method passes to the executor, so the same plan runs on the GPU (device
//! pointers) and in the host emulation that CI uses (host pointers), and the
//! launch logic is covered by tests without a GPU.
//!
//! Plans live on the stack (fixed-size arrays): running one allocates nothing.
//!
//! This file holds the plan types and the helpers the families share; each
//! family's plans are in its own file, `kernels/<family>.rs`, beside its
//! CUDA source.

#[cfg(test)]
use crate::kernels::Module;
use crate::kernels::{Dtype, Kernel, Param};
use kiln_core::device::Window2d;
use kiln_core::Acc;

/// Most arguments of any kernel.
pub const MAX_ARGS: usize = 24;
/// Most launches of any plan.
pub const MAX_LAUNCHES: usize = 4;
/// Threads per block of element-wise kernels.
pub const BLOCK: u32 = 256;
/// Most blocks of an element-wise launch (grid-stride loops cover the rest).
pub const MAX_GRID: u32 = 4096;
/// Threads per block of warp-per-row kernels (softmax, class losses): 4 rows per block.
pub const ROW_BLOCK: u32 = 128;
/// Threads per block of reductions (`sum_fwd`, `bias_bwd`).
pub const REDUCE_BLOCK: u32 = 256;
/// Blocks of the first `sum_fwd` pass (at most).
pub const REDUCE_GRID: u32 = 256;

/// One kernel argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    /// Operand `index`, starting `offset` elements in (of the operand's own type).
    Buf(u8, u64),
    /// A size.
    U64(u64),
    /// A flag.
    I32(i32),
    /// A scalar, converted to the kernel's element type at launch.
    Real(f64),
}

impl Arg {
    fn fits(&self, p: Param) -> bool {
        matches!(
            (self, p),
            (
                Arg::Buf(..),
                Param::In | Param::Out | Param::Labels | Param::OutU32 | Param::OutF64
            ) | (Arg::U64(_), Param::U64)
                | (Arg::I32(_), Param::I32)
                | (Arg::Real(_), Param::Real)
        )
    }
}

/// One kernel launch: a 1-D grid of 1-D blocks.
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    /// The kernel.
    pub kernel: &'static Kernel,
    /// Blocks.
    pub grid: u32,
    /// Threads per block (a multiple of 32).
    pub block: u32,
    /// The dtype of the kernel when it differs from the operation's (the `f64`
    /// final pass of `sum_sq` on `f32` data).
    pub dtype: Option<Dtype>,
    args: [Arg; MAX_ARGS],
    nargs: usize,
}

impl Launch {
    pub(crate) fn new(kernel: &'static Kernel, grid: u32, block: u32, list: &[Arg]) -> Self {
        let mut args = [Arg::U64(0); MAX_ARGS];
        args[..list.len()].copy_from_slice(list);
        Launch {
            kernel,
            grid: grid.max(1),
            block,
            dtype: None,
            args,
            nargs: list.len(),
        }
    }
    pub(crate) fn with_dtype(mut self, dt: Dtype) -> Self {
        self.dtype = Some(dt);
        self
    }
    /// The arguments, in the kernel's parameter order.
    pub fn args(&self) -> &[Arg] {
        &self.args[..self.nargs]
    }
    /// Whether the arguments match the kernel's declared parameters (count and kinds).
    pub fn check(&self) -> Result<(), String> {
        let p = self.kernel.params;
        if p.len() != self.nargs || !self.args().iter().zip(p).all(|(a, p)| a.fits(*p)) {
            return Err(format!(
                "kiln internal error: launch of {} with arguments {:?} but parameters {:?}",
                self.kernel.name,
                self.args(),
                p
            ));
        }
        Ok(())
    }
}

/// The launches of one operation, run in order on one stream.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub(crate) launches: [Option<Launch>; MAX_LAUNCHES],
    /// Elements of scratch memory the plan needs (appended by the executor as
    /// the last operand, e.g. [`loss_operands::SCRATCH`]).
    pub scratch: usize,
    /// Where the scalar result lands in the scratch buffer (losses), in
    /// elements of the operation's dtype.
    pub result: Option<usize>,
    /// The result's type when it is not the operation's (`f64` sums).
    pub result_dtype: Option<Dtype>,
}

impl Plan {
    pub(crate) fn one(l: Launch) -> Self {
        Plan {
            launches: [Some(l), None, None, None],
            scratch: 0,
            result: None,
            result_dtype: None,
        }
    }
    pub(crate) fn push(&mut self, l: Launch) {
        let slot = self.launches.iter_mut().find(|s| s.is_none());
        *slot.expect("kiln internal error: more than MAX_LAUNCHES launches in a plan") = Some(l);
    }
    /// The launches, in order.
    pub fn launches(&self) -> impl Iterator<Item = &Launch> {
        self.launches.iter().flatten()
    }
}

/// Grid size of an element-wise launch over `n` elements.
pub fn grid_for(n: u64) -> u32 {
    n.div_ceil(BLOCK as u64).clamp(1, MAX_GRID as u64) as u32
}

pub(crate) fn rows_grid(rows: u64) -> u32 {
    let per = (ROW_BLOCK / 32) as u64;
    rows.div_ceil(per).max(1).min(u32::MAX as u64) as u32
}

pub(crate) fn acc_flag(acc: Acc) -> i32 {
    match acc {
        Acc::Set => 0,
        Acc::Add => 1,
    }
}

pub(crate) fn elementwise(k: &'static Kernel, n: usize, args: &[Arg]) -> Plan {
    Plan::one(Launch::new(k, grid_for(n as u64), BLOCK, args))
}

/// The 13 window sizes, in the kernels' `KILN_WINDOW_PARAMS` order.
pub(crate) fn window(g: &Window2d) -> [Arg; 13] {
    [
        g.channels, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow,
    ]
    .map(|v| Arg::U64(v as u64))
}

pub(crate) fn with_window<const N: usize>(
    head: [Arg; N],
    g: &Window2d,
) -> ([Arg; MAX_ARGS], usize) {
    let mut a = [Arg::U64(0); MAX_ARGS];
    a[..N].copy_from_slice(&head);
    a[N..N + 13].copy_from_slice(&window(g));
    (a, N + 13)
}

pub(crate) fn windowed<const N: usize>(
    k: &'static Kernel,
    threads: usize,
    head: [Arg; N],
    g: &Window2d,
) -> Plan {
    let (a, n) = with_window(head, g);
    elementwise(k, threads, &a[..n])
}

/// Checks that every launch of `plans` matches its kernel's declared
/// parameters (count and kinds) with a block size that is a multiple of 32,
/// and that the plans launch every kernel of `module` (a family's test calls
/// it with one plan of each kind it builds).
#[cfg(test)]
pub(crate) fn check_plans(module: &Module, plans: &[Plan]) {
    let mut seen = std::collections::BTreeSet::new();
    for p in plans {
        for l in p.launches() {
            l.check().unwrap();
            assert_eq!(l.block % 32, 0, "{}", l.kernel.name);
            seen.insert(l.kernel.name);
        }
    }
    for k in module.kernels {
        assert!(
            seen.contains(k.name),
            "{} is in no plan of {}",
            k.name,
            module.name
        );
    }
}

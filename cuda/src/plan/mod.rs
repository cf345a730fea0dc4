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
//! One file per kernel family (mirroring `kernels/*.cu`): this file holds the
//! plan types and the helpers they share.

use crate::kernels::{self, Dtype, Kernel, Param};
use kiln_core::device::Block;
use kiln_core::device::{
    AdagradArgs, AdamArgs, BatchNormDims, LossKind, Resize2d, RmspropArgs, SgdArgs, UpsampleMode,
    Window2d,
};
use kiln_core::kernels::PReluDims;
use kiln_core::layers::LayerNormDims;
use kiln_core::{Acc, Act};

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
    fn new(kernel: &'static Kernel, grid: u32, block: u32, list: &[Arg]) -> Self {
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
    fn with_dtype(mut self, dt: Dtype) -> Self {
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
    launches: [Option<Launch>; MAX_LAUNCHES],
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
    fn one(l: Launch) -> Self {
        Plan {
            launches: [Some(l), None, None, None],
            scratch: 0,
            result: None,
            result_dtype: None,
        }
    }
    fn push(&mut self, l: Launch) {
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

fn rows_grid(rows: u64) -> u32 {
    let per = (ROW_BLOCK / 32) as u64;
    rows.div_ceil(per).max(1).min(u32::MAX as u64) as u32
}

fn acc_flag(acc: Acc) -> i32 {
    match acc {
        Acc::Set => 0,
        Acc::Add => 1,
    }
}

fn elementwise(k: &'static Kernel, n: usize, args: &[Arg]) -> Plan {
    Plan::one(Launch::new(k, grid_for(n as u64), BLOCK, args))
}

mod bias;
mod elementwise;
mod embedding;
mod loss;
mod norm;
mod optim;
mod spatial;

pub use bias::*;
pub use elementwise::*;
pub use embedding::*;
pub use loss::*;
pub use norm::*;
pub use optim::*;
pub use spatial::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_matches_its_kernels_signature() {
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
        let mut plans = vec![
            fill(10, 1.0),
            add(10),
            axpy(2.0, 10, Acc::Add),
            copy_block(
                &Block {
                    src_ld: 4,
                    src_off: 1,
                    dst_ld: 5,
                    dst_off: 2,
                    rows: 3,
                    cols: 2,
                },
                Acc::Set,
            ),
            bias_fwd(3, 4),
            bias_bwd(3, 4, Acc::Set),
            softmax_fwd(3, 4),
            softmax_bwd(3, 4, Acc::Add),
            sgd(&sgd_args, 10),
            adam(&adam_args, 10),
        ];
        for &f in Act::ALL {
            plans.push(act_fwd(f, 10));
            plans.push(act_bwd(f, 10, Acc::Set));
        }
        for k in [
            LossKind::SoftmaxCrossEntropy,
            LossKind::Hinge { margin: 1.0 },
            LossKind::Mse,
            LossKind::L1,
            LossKind::BceWithLogits,
        ] {
            plans.push(loss(k, 3, 4, true));
        }
        let g = Window2d::new("test", 2, (6, 5), (3, 2), (2, 1), (1, 0), (1, 2)).unwrap();
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
        plans.extend([
            sum_sq(10, false, Dtype::F32),
            sum_sq(10, true, Dtype::F64),
            penalty_grad(0.1, 0.2, 10, Acc::Set),
            dropout_fwd(10, 0.5, 1),
            dropout_bwd(10, 0.5, 1, Acc::Add),
            adagrad(&ada, 10),
            rmsprop(&rms, 10),
            im2col(&g, 0, 2),
            col2im(&g, 1, 1, Acc::Set),
            transpose01(0, 0, 2, 3, 4, Acc::Set),
            channel_bias_fwd(2, 3, 4),
            channel_bias_bwd(2, 3, 4, Acc::Add),
            max_pool2d_fwd(&g, 2),
            max_unpool2d(&g, 2, Acc::Set),
            max_unpool2d_bwd(&g, 2, Acc::Set),
            avg_pool2d_fwd(&g, 2),
            avg_pool2d_bwd(&g, 2, Acc::Add),
            soft_cross_entropy(3, 4, 0.1, true),
            focal(3, 4, 2.0, true),
            kl_div(3, 4, false, true),
        ]);
        let bn = BatchNormDims {
            batch: 2,
            channels: 3,
            spatial: 4,
            eps: 1e-5,
        };
        let rs = Resize2d {
            mode: UpsampleMode::Bilinear,
            channels: 2,
            h: 3,
            w: 4,
            oh: 6,
            ow: 8,
        };
        plans.extend([
            batch_norm_stats(&bn),
            batch_norm_running(&bn, 0.1),
            batch_norm_fwd(&bn),
            batch_norm_bwd(&bn, Acc::Set, Some(Acc::Add)),
            upsample2d_fwd(&rs, 2),
            upsample2d_bwd(&rs, 2, Acc::Set),
            embedding_fwd(12, 7, 5),
            embedding_bwd(12, 7, 5, Some(0), Acc::Set),
        ]);
        let pd = PReluDims {
            batch: 2,
            channels: 3,
            inner: 4,
        };
        plans.extend([prelu_fwd(&pd), prelu_bwd(&pd, Acc::Set, Some(Acc::Add))]);
        let ld = LayerNormDims {
            rows: 5,
            cols: 40,
            eps: 1e-5,
        };
        plans.extend([
            layer_norm_fwd(&ld, 3),
            layer_norm_bwd(&ld, 7, Acc::Set, Some(Acc::Add)),
        ]);
        let mut seen = std::collections::HashSet::new();
        for p in &plans {
            for l in p.launches() {
                l.check().unwrap();
                assert_eq!(l.block % 32, 0);
                seen.insert(l.kernel.name);
            }
        }
        assert_eq!(
            seen.len(),
            kernels::KERNEL_COUNT,
            "some kernel is in no plan"
        );
    }
}

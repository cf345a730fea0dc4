//! Every `Backend` method of the CUDA device against the CPU device, on random
//! inputs (sizes that are and are not multiples of the block sizes), f32 and
//! f64, `Acc::Set` and `Acc::Add`.
//!
//! By default the CUDA device is the host emulation: kiln's CUDA C kernels
//! compiled with the system C++ compiler against `tests/shim/cuda_shim.h` and
//! run with one host thread per CUDA thread, products through the column-major
//! reference on the exact cuBLAS arguments. With `KILN_TEST_GPU=1` the same
//! checks run on GPU 0 (scripts/gpu-check), with the GPU tolerance
//! |a − b| ≤ 1e-4·(1 + |b|).

#[path = "../common/mod.rs"]
mod common;
mod core_ops;
mod layer_ops;
mod train_ops;

use core_ops::*;
use layer_ops::*;
use train_ops::*;

use common::*;
use kiln_core::device::Block;
use kiln_core::device::{
    AdagradArgs, AdamArgs, BatchNormDims, LossKind, LossTarget, Resize2d, RmspropArgs, SgdArgs,
    UpsampleMode, Window2d,
};
use kiln_core::kernels::{
    BatchNormKernels, ConvKernels, DropoutKernels, EmbeddingKernels, LossKernels, OptimKernels,
    PReluDims, PReluKernels, PoolKernels, SoftmaxKernels, UpsampleKernels,
};
use kiln_core::layers::{
    AttentionKernels, AttnDims, GruDims, GruKernels, L2NormalizeDims, L2NormalizeKernels,
    LayerNormDims, LayerNormKernels, LstmDims, LstmKernels, RnnDims, RnnKernels, RnnNonlinearity,
};
use kiln_core::{rng, Acc, Act, Backend, Cpu, Device, Elem, Gemm, GemmBatched, Rng};
use kiln_cuda::Cuda;
use rand::Rng as _;

fn on_gpu() -> bool {
    std::env::var("KILN_TEST_GPU").as_deref() == Ok("1")
}

fn device() -> Cuda {
    if on_gpu() {
        Cuda::new(0).unwrap_or_else(|e| panic!("KILN_TEST_GPU=1 but {e}"))
    } else {
        emulated()
    }
}

fn tolerance<E: Elem>() -> f64 {
    if on_gpu() {
        1e-4
    } else {
        tol::<E>()
    }
}

/// Records the largest error per op, printed at the end as a summary table.
struct Report {
    rows: Vec<(String, &'static str, f64)>,
}

impl Report {
    fn add<E: Elem>(&mut self, op: &str, got: &[E], want: &[E]) {
        let e = check(op, got, want, tolerance::<E>());
        match self.rows.iter_mut().find(|r| r.0 == op && r.1 == E::NAME) {
            Some(r) => r.2 = r.2.max(e),
            None => self.rows.push((op.to_string(), E::NAME, e)),
        }
    }
}

const SIZES: [usize; 6] = [1, 31, 255, 256, 257, 1000];

fn all_ops<E: Elem>(d: &Cuda, rep: &mut Report) {
    let mut r = rng(7);
    type Part = fn(&Cuda, &mut Rng, &mut Report);
    let parts: [(&str, Part); 22] = [
        ("attention", attention::<E>),
        ("rnn", rnn::<E>),
        ("gru", gru::<E>),
        ("lstm", lstm::<E>),
        ("prelu", prelu::<E>),
        ("layer norm", layer_norm::<E>),
        ("distribution losses", distribution_losses::<E>),
        ("batch norm and upsampling", norm_and_upsample::<E>),
        ("toolkit", toolkit::<E>),
        ("conv and pooling", conv::<E>),
        ("memory", memory::<E>),
        ("gemm", gemm::<E>),
        ("gemm_batched", gemm_batched::<E>),
        ("embedding", embedding::<E>),
        ("bias", bias::<E>),
        ("bias_act", bias_act::<E>),
        ("activations", acts::<E>),
        ("element-wise", elementwise::<E>),
        ("softmax", softmax::<E>),
        ("losses", losses::<E>),
        ("optimizers", optimizers::<E>),
        ("l2 normalize", l2_normalize::<E>),
    ];
    for (name, f) in parts {
        let t = std::time::Instant::now();
        f(d, &mut r, rep);
        eprintln!("{name} ({}): {:.2} s", E::NAME, t.elapsed().as_secs_f64());
    }
}

/// One test, so that the coverage check at the end sees every launch.
#[test]
fn every_backend_method_matches_the_cpu() {
    let d = device();
    let mut rep = Report { rows: Vec::new() };
    all_ops::<f32>(&d, &mut rep);
    all_ops::<f64>(&d, &mut rep);
    println!(
        "{:<28} {:>5} {:>12}   (device {}, tolerance {:e} / {:e})",
        "op",
        "dtype",
        "max err",
        d.name(),
        tolerance::<f32>(),
        tolerance::<f64>()
    );
    for (op, dt, e) in &rep.rows {
        println!("{op:<28} {dt:>5} {e:>12.3e}");
    }
    println!(
        "{} passed, 0 failed: op × dtype comparisons",
        rep.rows.len()
    );
    if !on_gpu() {
        // Every kernel of the registry, in both dtypes, ran through the shim.
        let ran = d.executed_kernels();
        let missing: Vec<&str> = kiln_cuda::kernels::all()
            .flat_map(|k| [k.f32, k.f64])
            .filter(|s| !ran.contains(s))
            .collect();
        assert!(missing.is_empty(), "kernels never executed: {missing:?}");
        assert_eq!(ran.len(), 2 * kiln_cuda::kernels::KERNEL_COUNT);
    }
}

#[test]
fn loss_scratch_is_allocated_once_and_labels_out_of_range_give_nan() {
    let d = device();
    // A label ≥ the class count (which `Labels` prevents) gives NaN, not a wild read.
    let x = up::<f32>(&d, &[1.0, 2.0, 3.0, 4.0]);
    let l = up_u32::<f32>(&d, &[0, 7]);
    let v = <Cuda as LossKernels<f32>>::loss(
        &d,
        LossKind::SoftmaxCrossEntropy,
        &x,
        LossTarget::Classes(&l),
        None,
        2,
        2,
    )
    .unwrap();
    assert!(v.is_nan());
    // The wrong kind of target is an error, not a panic.
    let e = <Cuda as LossKernels<f32>>::loss(
        &d,
        LossKind::Mse,
        &x,
        LossTarget::Classes(&l),
        None,
        2,
        2,
    )
    .unwrap_err();
    assert!(e.to_string().contains("wrong kind of target"), "{e}");
    // Short buffers are errors.
    let mut y = up::<f32>(&d, &[0.0; 3]);
    assert!(<Cuda as Backend<f32>>::act_fwd(&d, Act::Relu, &x, &mut y, 4).is_err());
}

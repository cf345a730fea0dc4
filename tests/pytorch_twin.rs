//! Weights exchange with PyTorch both ways (scripts/pytorch/twin.py), for the
//! MNIST MLP, LeNet-5 and a residual CNN with batch norm (whose buffers —
//! running statistics and the int64 `num_batches_tracked` — exchange too).
//!
//! * PyTorch → kiln: `tests/fixtures/torch_twin_<net>.safetensors` holds a
//!   PyTorch `state_dict`, a batch and PyTorch's output for it (in eval mode,
//!   after a few training-mode passes so the running statistics are not their
//!   defaults); kiln loads the tensors by name and reproduces the output
//!   within 1e-5.
//! * kiln → PyTorch: this test also writes `target/twin/kiln_<net>.safetensors`
//!   (weights, buffers, a batch, kiln's output), which
//!   `python3 scripts/pytorch/twin.py check <net> target/twin/kiln_<net>.safetensors`
//!   loads with `load_state_dict(strict=True)` and compares.

use kiln::checkpoint::Checkpoint;
use kiln::checkpoint::Dtype;
use kiln::prelude::*;

kiln::network! {
    /// The MNIST MLP of examples/mnist_mlp.rs.
    pub struct Mlp {
        input: [784],
        fc1: Linear(512),
        relu,
        fc2: Linear(256),
        relu,
        fc3: Linear(10),
    }
}

/// LeNet-5, declared once in `kiln::models` (see there).
use kiln::models::LeNet5 as LeNet;

kiln::network! {
    /// The pieces of examples/fashion_cnn.rs at a small size.
    pub struct ResCnn {
        input x: [1, 12, 12],
        let s = x |> stem: Conv2d(8, kernel = 3, padding = 1, bias = false) |> bn0: BatchNorm2d |> relu;
        let h = s |> c1: Conv2d(8, kernel = 3, padding = 1, bias = false) |> bn1: BatchNorm2d |> relu
                  |> c2: Conv2d(8, kernel = 3, padding = 1, bias = false) |> bn2: BatchNorm2d;
        output relu(h + s) |> down: Conv2d(16, kernel = 3, stride = 2, padding = 1, bias = false) |> bn3: BatchNorm2d |> relu
            |> gap: GlobalAvgPool |> head: Linear(10);
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/torch_twin_{name}.safetensors"))
}

macro_rules! twin {
    ($from_torch:ident, $to_torch:ident, $name:literal, $net:ident, $shape:ty) => {
        #[test]
        fn $from_torch() {
            let path = fixture($name);
            let ck = Checkpoint::read(&path).unwrap();
            let mut net = $net::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
            ck.load_module("", &mut net, &path).unwrap();
            let x =
                Tensor::<$shape>::from_slice(&Cpu, &ck.values::<f32>("__input").unwrap()).unwrap();
            let want = ck.values::<f32>("__output").unwrap();
            let got = net.forward(&x).unwrap().to_vec().unwrap();
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5, "{}: kiln {a} vs PyTorch {b}", $name);
            }
        }

        #[test]
        fn $to_torch() {
            let mut net = $net::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
            let n = <$shape as Shape>::NUMEL;
            let xs: Vec<f32> = (0..4 * n)
                .map(|i| ((i * 37) % 101) as f32 / 101.0)
                .collect();
            let x = Tensor::<$shape>::from_slice(&Cpu, &xs).unwrap();
            // Two training passes: the running statistics move off their defaults.
            let mut tape = net.tape().unwrap();
            for _ in 0..2 {
                net.forward_train(&x, &mut tape).unwrap();
            }
            let y = net.forward(&x).unwrap().to_vec().unwrap();
            let mut ck = Checkpoint::new();
            ck.add_module("", &net).unwrap();
            let mut dims = vec![4];
            dims.extend_from_slice(<$shape as Shape>::DIMS);
            ck.add_values("__input", &dims, &xs);
            ck.add_values("__output", &[4, 10], &y);
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/twin");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("kiln_{}.safetensors", $name));
            ck.save(&file).unwrap();
            // What the Python side checks, checked here too: the file reads
            // back whole, and loads into a fresh network that then agrees.
            let back = Checkpoint::read(&file).unwrap();
            assert_eq!(back, ck);
            let mut fresh = $net::<f32, Cpu>::init(&Cpu, &mut rng(9)).unwrap();
            back.load_module("", &mut fresh, &file).unwrap();
            assert_eq!(fresh.forward(&x).unwrap().to_vec().unwrap(), y);
        }
    };
}

twin!(
    mlp_pytorch_weights_reproduce_pytorch_outputs,
    mlp_kiln_writes_what_pytorch_loads,
    "mlp",
    Mlp,
    S1<784>
);
twin!(lenet_pytorch_weights_reproduce_pytorch_outputs, lenet_kiln_writes_what_pytorch_loads, "lenet", LeNet, S3<1, 28, 28>);
twin!(rescnn_pytorch_weights_reproduce_pytorch_outputs, rescnn_kiln_writes_what_pytorch_loads, "rescnn", ResCnn, S3<1, 12, 12>);

#[test]
fn num_batches_tracked_is_int64_both_ways() {
    // PyTorch writes it as an int64 scalar; kiln reads it so and writes it so.
    let path = fixture("rescnn");
    let ck = Checkpoint::read(&path).unwrap();
    assert_eq!(
        ck.tensors
            .get("bn0.num_batches_tracked")
            .map(|t| (t.dtype, t.shape.clone())),
        Some((Dtype::I64, vec![]))
    );
    let mut net = ResCnn::<f32, Cpu>::init(&Cpu, &mut rng(0)).unwrap();
    ck.load_module("", &mut net, &path).unwrap();
    assert_eq!(net.bn0.num_batches_tracked.to_vec().unwrap(), vec![3.0]);
    let mut out = Checkpoint::new();
    out.add_module("", &net).unwrap();
    let t = &out.tensors["bn0.num_batches_tracked"];
    assert_eq!(
        (t.dtype, t.shape.clone(), t.bytes.clone()),
        (Dtype::I64, vec![], 3i64.to_le_bytes().to_vec())
    );
}

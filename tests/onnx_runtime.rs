//! Exported models checked by the real clients: each is written with
//! `to_onnx`, checked with `onnx.checker.check_model(full_check=True)`, run
//! in ONNX Runtime on random inputs at two batch sizes, and compared with
//! kiln's `forward`: `max|ort − kiln| / max|kiln| ≤ 1e-5` in f32 (see
//! `onnx_ort/mod.rs` for how Python is found; without it the tests skip,
//! except under CI=true).

use crate::onnx_ort;

use kiln::prelude::*;
use onnx_ort::{available, rel_err, run, run_file, uniform, Data, Feed};

const TOL: f64 = 1e-5;

/// The batch sizes every model runs at (the batch dimension is symbolic).
const BATCHES: [usize; 2] = [1, 5];

fn feed(name: &str, batch: usize, dims: &[usize], v: Vec<f32>) -> Feed {
    let mut shape = vec![batch];
    shape.extend_from_slice(dims);
    Feed {
        name: name.into(),
        shape,
        data: Data::F32(v),
    }
}

fn widen(v: Vec<f32>) -> Vec<f64> {
    v.into_iter().map(f64::from).collect()
}

/// Runs a one-input, one-output `Layer`-like network in ONNX Runtime at
/// both batch sizes and compares with its `forward`.
macro_rules! check_one {
    ($net:expr, $in:ty, $what:literal) => {{
        let net = &$net;
        let bytes = net.to_onnx_bytes().unwrap();
        for (k, &b) in BATCHES.iter().enumerate() {
            let n = <$in as Shape>::NUMEL;
            let xv = uniform(b * n, 100 + k as u64);
            let x = Tensor::<$in>::from_vec(&Cpu, b, xv.clone()).unwrap();
            let ours = widen(net.forward(&x).unwrap().to_vec().unwrap());
            let r = run(&bytes, &[feed("x", b, <$in as Shape>::DIMS, xv)]);
            assert_eq!(r.opset, 17);
            let o = &r.outputs[0];
            assert_eq!(o.shape[0], b, "{}: batch", $what);
            let e = rel_err(&ours, &o.values);
            println!(
                "{} batch {b}: max relative error {e:.2e} ({})",
                $what, r.versions
            );
            assert!(e <= TOL, "{}: batch {b}: error {e:e}", $what);
        }
    }};
}

kiln::network! {
    /// An MLP with every activation and a softmax.
    pub struct Mlp {
        input: [12],
        fc1: Linear(16),
        relu,
        fc2: Linear(16),
        tanh,
        fc3: Linear(16),
        sigmoid,
        fc4: Linear(16),
        LeakyRelu(0.1),
        fc5: Linear(16),
        gelu,
        fc6: Linear(16),
        Gelu(approximate = "tanh"),
        act: PReLU(16),
        fc7: Linear(10, bias = false),
        softmax,
    }
}

#[test]
fn mlp_matches_onnx_runtime() {
    if !available() {
        return;
    }
    let net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(1)).unwrap();
    check_one!(net, S1<12>, "MLP");
}

kiln::network! {
    /// `L2Normalize` at every position of a `[3, 4]` view (PyTorch's ε) and
    /// on a vector with an ε near the rows' norms.
    pub struct Normalized {
        input: [12],
        fc1: Linear(12),
        Reshape([3, 4]),
        L2Normalize,
        flatten,
        fc2: Linear(6),
        l2_normalize(eps = 1.0),
    }
}

#[test]
fn l2_normalize_matches_onnx_runtime() {
    if !available() {
        return;
    }
    let net = Normalized::<f32, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    check_one!(net, S1<12>, "L2Normalize");
}

kiln::network! {
    /// A graph with two inputs and two outputs: a shared layer applied
    /// twice, an addition, concatenations along the features and along a
    /// leading dimension, a reshape and a position-wise linear layer.
    pub struct TwoWay {
        input a: [6],
        input b: [6],
        layer enc = Linear(8);
        let ha = a |> enc |> tanh;
        let hb = b |> enc |> relu;
        let s = ha + hb;
        let c = concat(s, ha);
        let r = c |> Reshape([2, 8]) |> per_row: Linear(3);
        output sum = s |> head: Linear(4);
        output rows = concat(r, r, dim = 0);
    }
}

#[test]
fn graph_with_two_inputs_two_outputs_shared_layer_add_concat() {
    if !available() {
        return;
    }
    let net = TwoWay::<f32, Cpu>::init(&Cpu, &mut rng(2)).unwrap();
    let bytes = net.to_onnx_bytes().unwrap();
    for (k, &bs) in BATCHES.iter().enumerate() {
        let av = uniform(bs * 6, 10 + k as u64);
        let bv = uniform(bs * 6, 20 + k as u64);
        let a = Tensor::<S1<6>>::from_vec(&Cpu, bs, av.clone()).unwrap();
        let b = Tensor::<S1<6>>::from_vec(&Cpu, bs, bv.clone()).unwrap();
        let (sum, rows) = net.forward(&a, &b).unwrap();
        let r = run(&bytes, &[feed("a", bs, &[6], av), feed("b", bs, &[6], bv)]);
        assert_eq!(r.outputs[0].name, "sum");
        assert_eq!(r.outputs[1].name, "rows");
        assert_eq!(r.outputs[1].shape, [bs, 4, 3]);
        for (ours, theirs) in [
            (sum.to_vec().unwrap(), &r.outputs[0]),
            (rows.to_vec().unwrap(), &r.outputs[1]),
        ] {
            let e = rel_err(&widen(ours), &theirs.values);
            println!(
                "TwoWay {} batch {bs}: max relative error {e:.2e}",
                theirs.name
            );
            assert!(e <= TOL, "{}: batch {bs}: {e:e}", theirs.name);
        }
    }
    // The shared layer's weights are written once.
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(
        text.matches("enc.weight").count(),
        3,
        "one initializer, read by two Gemms"
    );
}

#[test]
fn lenet5_matches_onnx_runtime() {
    if !available() {
        return;
    }
    let net = kiln::models::LeNet5::<f32, Cpu>::init(&Cpu, &mut rng(3)).unwrap();
    check_one!(net, S3<1, 28, 28>, "LeNet-5");
}

kiln::network! {
    /// LeNet's shape at a small size with the other image layers: a
    /// rectangular strided kernel, tanh, average pooling, dropout.
    pub struct TinyLeNet {
        input: [1, 10, 10],
        conv1: Conv2d(3, kernel = 3, padding = 1),
        relu,
        pool1: MaxPool2d(2),
        conv2: Conv2d(3, 4, kernel = (3, 2), stride = (1, 2)),
        tanh,
        pool2: AvgPool2d(kernel = 2, stride = 1, padding = 1),
        flatten,
        drop: Dropout(0.25),
        fc1: Linear(5),
        sigmoid,
        fc2: Linear(3),
    }
}

#[test]
fn image_layers_match_onnx_runtime() {
    if !available() {
        return;
    }
    let net = TinyLeNet::<f32, Cpu>::init(&Cpu, &mut rng(4)).unwrap();
    check_one!(net, S3<1, 10, 10>, "TinyLeNet");
}

kiln::network! {
    /// A small PixelCNN: masked convolutions of both types, a residual add.
    pub struct TinyPixelCnn {
        input x: [1, 8, 8],
        let h = x |> a: MaskedConv2d(4, kernel = 5, mask = "A", padding = 2);
        let r = h |> relu |> b: MaskedConv2d(4, kernel = 3, mask = "B", padding = 1);
        output h + r |> relu |> out: Conv2d(1, kernel = 1);
    }
}

#[test]
fn masked_convolutions_match_onnx_runtime() {
    if !available() {
        return;
    }
    let mut net = TinyPixelCnn::<f32, Cpu>::init(&Cpu, &mut rng(6)).unwrap();
    // Non-zero values under the masks: the export must write W ⊙ M, as
    // the layer applies it, not the stored weight.
    net.a.conv.weight.copy_from_slice(&[0.05; 100]).unwrap();
    check_one!(net, S3<1, 8, 8>, "TinyPixelCnn");
}

kiln::network! {
    /// A residual block with batch norm, as `examples/fashion_cnn.rs`'s.
    pub struct ResBlock {
        input x: [8, 7, 7],
        let h = x |> c1: Conv2d(8, kernel = 3, padding = 1, bias = false) |> bn1: BatchNorm2d |> relu
                  |> c2: Conv2d(8, kernel = 3, padding = 1, bias = false) |> bn2: BatchNorm2d;
        output relu(h + x);
    }
}

kiln::network! {
    /// A residual CNN: stem, a nested residual block, a stride-2
    /// convolution with batch norm, another block written inline, global
    /// average pooling, a linear head.
    pub struct ResCnn {
        input x: [1, 14, 14],
        let s1 = x |> stem: Conv2d(8, kernel = 3, stride = 2, padding = 1, bias = false) |> bn0: BatchNorm2d |> relu;
        let b1 = s1 |> block: ResBlock -> [8, 7, 7];
        let s2 = b1 |> down: Conv2d(16, kernel = 3, stride = 2, padding = 1, bias = false) |> bn2: BatchNorm2d |> relu;
        let h = s2 |> c3: Conv2d(16, kernel = 3, padding = 1, bias = false) |> bn3: BatchNorm2d;
        output relu(h + s2) |> gap: GlobalAvgPool |> fc: Linear(10);
    }
}

#[test]
fn residual_cnn_with_batch_norm_matches_onnx_runtime() {
    if !available() {
        return;
    }
    let mut net = ResCnn::<f32, Cpu>::init(&Cpu, &mut rng(5)).unwrap();
    // Training steps move the running statistics away from 0 and 1, so
    // that the export's use of them is seen.
    let mut tape = net.tape_seeded(7).unwrap();
    for s in 0..3 {
        let x = Tensor::<S3<1, 14, 14>>::from_vec(&Cpu, 8, uniform(8 * 196, 50 + s)).unwrap();
        net.forward_train(&x, &mut tape).unwrap();
    }
    assert!(net
        .bn0
        .running_var
        .to_vec()
        .unwrap()
        .iter()
        .any(|v| (v - 1.0).abs() > 1e-3));
    check_one!(net, S3<1, 14, 14>, "residual CNN");
    // The nested block's parameters are named under its field, as in the state_dict.
    let text = String::from_utf8_lossy(&net.to_onnx_bytes().unwrap()).into_owned();
    assert!(text.contains("block.bn1.running_mean"));
}

kiln::network! {
    /// An encoder–decoder: strided and grouped convolutions down, nearest
    /// upsampling and unpooling through the encoder's pool indices, a
    /// channel-concatenation skip, transposed convolutions (one with output
    /// padding), batch norm and bilinear upsampling up.
    pub struct EncDec {
        input x: [2, 8, 8],
        let e1 = x |> enc1: Conv2d(4, kernel = 3, padding = 1) |> relu;
        let p = e1 |> pool: MaxPool2d(2);
        let z = p |> enc2: Conv2d(4, kernel = 3, stride = 2, padding = 1, groups = 2) |> tanh;
        let u = z |> up: Upsample(2) |> unpool: MaxUnpool2d(pool);
        let d = concat(u, e1) |> dec: ConvTranspose2d(2, kernel = 2, stride = 2, padding = 4, bias = false);
        output d |> bnd: BatchNorm2d
                 |> dec2: ConvTranspose2d(3, kernel = 3, stride = 2, padding = 1, output_padding = 1)
                 |> Upsample(scale = 2, mode = bilinear);
    }
}

#[test]
fn encoder_decoder_with_unpooling_and_a_skip_matches_onnx_runtime() {
    if !available() {
        return;
    }
    let mut net = EncDec::<f32, Cpu>::init(&Cpu, &mut rng(12)).unwrap();
    let mut tape = net.tape_seeded(3).unwrap();
    for s in 0..2 {
        let x = Tensor::<S3<2, 8, 8>>::from_vec(&Cpu, 6, uniform(6 * 128, 70 + s)).unwrap();
        net.forward_train(&x, &mut tape).unwrap();
    }
    assert_eq!(EncDec::OUTPUTS, &[&[3usize, 32, 32][..]]);
    check_one!(net, S3<2, 8, 8>, "encoder-decoder");
}

kiln::network! {
    /// A network in f64: the export writes doubles. (Tanh, not GELU: ONNX
    /// Runtime's CPU `Erf` is float-only; the file is valid either way.)
    pub struct Wide {
        input: [5],
        fc1: Linear(7),
        tanh,
        fc2: Linear(3),
    }
}

#[test]
fn f64_networks_export_doubles() {
    if !available() {
        return;
    }
    let net = Wide::<f64, Cpu>::init(&Cpu, &mut rng(6)).unwrap();
    let xv: Vec<f64> = uniform(4 * 5, 9).into_iter().map(f64::from).collect();
    let x = Tensor::<S1<5>, f64>::from_vec(&Cpu, 4, xv.clone()).unwrap();
    let ours = net.forward(&x).unwrap().to_vec().unwrap();
    let r = run(
        &net.to_onnx_bytes().unwrap(),
        &[Feed {
            name: "x".into(),
            shape: vec![4, 5],
            data: Data::F64(xv),
        }],
    );
    let e = rel_err(&ours, &r.outputs[0].values);
    println!("f64 MLP: max relative error {e:.2e}");
    assert!(e <= 1e-12, "{e:e}");
}

/// A layer type of the user's own with an empty `impl Onnx` (the trait's
/// default): every built-in kind exports, so this is how the error reads.
struct MyLayer;
impl kiln::onnx::Onnx for MyLayer {}

#[test]
fn a_layer_without_an_onnx_form_is_an_error_naming_it_and_nothing_is_written() {
    use kiln::onnx::Onnx;
    let mut g = kiln::onnx::Graph::new::<f32>();
    let e = MyLayer
        .onnx(&mut g, "block.mine", &["x"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "ONNX export: layer `block.mine` (MyLayer) has no ONNX form in kiln yet; nothing was written (docs/onnx.md lists the layers that export)"
    );
    // Exporting it as a whole model fails before any file exists.
    let io = |name, dims| kiln::onnx::Io {
        name,
        dims,
        tokens: false,
    };
    let r = kiln::onnx::model_bytes::<f32, _>(&MyLayer, "Mine", &[io("x", &[4])], &[io("y", &[4])]);
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("layer `(the network)` (MyLayer)"));
}

/// `to_onnx` writes the file a user loads; running it by path gives the
/// same outputs as the bytes.
#[test]
fn to_onnx_writes_the_model_file() {
    if !available() {
        return;
    }
    let net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(11)).unwrap();
    let dir = std::env::temp_dir().join(format!("kiln-onnx-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("mlp.onnx");
    net.to_onnx(&p).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), net.to_onnx_bytes().unwrap());
    let xv = uniform(3 * 12, 12);
    let x = Tensor::<S1<12>>::from_vec(&Cpu, 3, xv.clone()).unwrap();
    let ours = widen(net.forward(&x).unwrap().to_vec().unwrap());
    let r = run_file(&p, &[feed("x", 3, &[12], xv)]);
    assert!(rel_err(&ours, &r.outputs[0].values) <= TOL);
    let _ = std::fs::remove_dir_all(&dir);
}

//! kiln-core's convolution, pooling, dropout, batch-norm, upsampling,
//! L2-normalisation and embedding layers (and the per-position cross-entropy) give the same outputs,
//! input gradients and parameter gradients on the CUDA device as on the CPU
//! (the layers' own code, unchanged; only the device differs).
//!
//! The device is the host emulation by default, GPU 0 with `KILN_TEST_GPU=1`.

use crate::common;

use kiln_core::device::UpsampleMode;
use kiln_core::kernels::Kernels;
use kiln_core::layers::{
    AvgPool2d, BatchNorm1d, BatchNorm2d, BatchNormConfig, BatchNormGrads, Conv2d, Conv2dConfig,
    Conv2dGrads, Dropout, DropoutConfig, Gelu, Gru, GruConfig, GruGrads, L2Normalize, LayerNorm,
    LayerNormConfig, LayerNormGrads, Lstm, LstmConfig, LstmGrads, MaxPool2d, PRelu, PReluConfig,
    PReluGrads, Pool2dConfig, Rnn, RnnConfig, RnnGrads, RnnNonlinearity, Upsample, UpsampleConfig,
};
use kiln_core::{rng, Acc, Build, Cpu, Elem, Layer, Shape, Tensor, TrainCtx, S3};
use kiln_cuda::Cuda;

fn device() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

/// Forward (train mode) and backward of `L` on device `D`: y, dx and the
/// parameter gradients that `grads_of` extracts.
fn run<E: Elem, D: Kernels<E>, L: Layer<E, D> + Build<E, D>>(
    dev: &D,
    cfg: L::Config,
    grads_of: fn(&L::Grads) -> Vec<Vec<E>>,
) -> (Vec<E>, Vec<E>, Vec<Vec<E>>) {
    let batch = 3;
    let mut layer = L::build(dev, &mut rng(5), cfg).unwrap();
    let mut r = rng(9);
    let xv: Vec<E> = common::rand_vec(&mut r, batch * L::In::NUMEL, 1.0);
    let dyv: Vec<E> = common::rand_vec(&mut r, batch * L::Out::NUMEL, 1.0);
    let x = Tensor::<L::In, E, D>::from_slice(dev, &xv).unwrap();
    let dy = Tensor::<L::Out, E, D>::from_slice(dev, &dyv).unwrap();
    let mut y = Tensor::empty(dev).unwrap();
    let mut cache = layer.cache().unwrap();
    layer
        .forward_train(&x, &mut y, &mut cache, &mut TrainCtx::new(13))
        .unwrap();
    let mut dx = Tensor::empty(dev).unwrap();
    let mut grads = layer.grads().unwrap();
    layer
        .backward(
            &x,
            &y,
            &mut cache,
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut grads,
            Acc::Set,
        )
        .unwrap();
    (y.to_vec().unwrap(), dx.to_vec().unwrap(), grads_of(&grads))
}

fn compare<E: Elem>(
    name: &str,
    cpu: (Vec<E>, Vec<E>, Vec<Vec<E>>),
    cuda: (Vec<E>, Vec<E>, Vec<Vec<E>>),
) {
    let tol = if std::mem::size_of::<E>() == 4 {
        1e-4
    } else {
        1e-10
    };
    common::check(&format!("{name} y"), &cuda.0, &cpu.0, tol);
    common::check(&format!("{name} dx"), &cuda.1, &cpu.1, tol);
    assert_eq!(cpu.2.len(), cuda.2.len());
    for (i, (a, b)) in cuda.2.iter().zip(&cpu.2).enumerate() {
        common::check(&format!("{name} parameter gradient {i}"), a, b, tol);
    }
    println!(
        "{name} ({}): y, dx and {} parameter gradients agree",
        E::NAME,
        cpu.2.len()
    );
}

fn conv_grads<
    E: Elem,
    D: Kernels<E>,
    const CO: usize,
    const CG: usize,
    const KH: usize,
    const KW: usize,
>(
    g: &Conv2dGrads<E, D, CO, CG, KH, KW>,
) -> Vec<Vec<E>> {
    let mut v = vec![g.weight.to_vec().unwrap()];
    if let Some(b) = &g.bias {
        v.push(b.to_vec().unwrap());
    }
    v
}

fn no_grads<G, E>(_: &G) -> Vec<Vec<E>> {
    Vec::new()
}

macro_rules! conv {
    ($e:ty, $name:expr, $cfg:expr, [$ci:literal, $co:literal, $cg:literal, $kh:literal, $kw:literal, $h:literal, $w:literal, $oh:literal, $ow:literal]) => {{
        let cpu = run::<$e, Cpu, Conv2d<$e, Cpu, $ci, $co, $cg, $kh, $kw, $h, $w, $oh, $ow>>(
            &Cpu, $cfg, conv_grads,
        );
        let cuda = run::<$e, Cuda, Conv2d<$e, Cuda, $ci, $co, $cg, $kh, $kw, $h, $w, $oh, $ow>>(
            &device(),
            $cfg,
            conv_grads,
        );
        compare::<$e>($name, cpu, cuda);
    }};
}

fn convs<E: Elem>() {
    let d = Conv2dConfig::default();
    conv!(
        E,
        "conv 3x3 pad 1",
        Conv2dConfig {
            padding: (1, 1),
            ..d
        },
        [2, 3, 2, 3, 3, 5, 5, 5, 5]
    );
    conv!(
        E,
        "conv 2x3 stride 2",
        Conv2dConfig {
            stride: (2, 2),
            ..d
        },
        [2, 3, 2, 2, 3, 6, 7, 3, 3]
    );
    conv!(
        E,
        "conv dilation 2, no bias",
        Conv2dConfig {
            dilation: (2, 2),
            bias: false,
            ..d
        },
        [2, 2, 2, 3, 3, 7, 6, 3, 2]
    );
    conv!(
        E,
        "conv groups 2",
        Conv2dConfig {
            padding: (1, 1),
            groups: 2,
            ..d
        },
        [4, 6, 2, 3, 3, 5, 5, 5, 5]
    );
    conv!(
        E,
        "conv LeNet-like 5x5",
        Conv2dConfig {
            padding: (2, 2),
            ..d
        },
        [1, 6, 1, 5, 5, 12, 12, 12, 12]
    );
}

fn pools<E: Elem>() {
    let p = Pool2dConfig::new((2, 2));
    let cpu = run::<E, Cpu, MaxPool2d<3, 6, 7, 3, 3>>(&Cpu, p, no_grads);
    let cuda = run::<E, Cuda, MaxPool2d<3, 6, 7, 3, 3>>(&device(), p, no_grads);
    compare("max_pool 2x2", cpu, cuda);
    let p = Pool2dConfig {
        kernel: (3, 3),
        stride: (2, 2),
        padding: (1, 1),
        dilation: (1, 1),
    };
    let cpu = run::<E, Cpu, MaxPool2d<2, 7, 6, 4, 3>>(&Cpu, p, no_grads);
    let cuda = run::<E, Cuda, MaxPool2d<2, 7, 6, 4, 3>>(&device(), p, no_grads);
    compare("max_pool 3x3 stride 2 pad 1", cpu, cuda);
    let cpu = run::<E, Cpu, AvgPool2d<2, 7, 6, 4, 3>>(&Cpu, p, no_grads);
    let cuda = run::<E, Cuda, AvgPool2d<2, 7, 6, 4, 3>>(&device(), p, no_grads);
    compare("avg_pool 3x3 stride 2 pad 1", cpu, cuda);
    let dc = DropoutConfig { p: 0.3 };
    let cpu = run::<E, Cpu, Dropout<S3<2, 5, 7>>>(&Cpu, dc, no_grads);
    let cuda = run::<E, Cuda, Dropout<S3<2, 5, 7>>>(&device(), dc, no_grads);
    compare("dropout p = 0.3", cpu, cuda);
}

fn bn_grads<E: Elem, D: Kernels<E>, const C: usize>(g: &BatchNormGrads<E, D, C>) -> Vec<Vec<E>> {
    vec![g.weight.to_vec().unwrap(), g.bias.to_vec().unwrap()]
}

fn norms_and_upsampling<E: Elem>() {
    let c = BatchNormConfig::default();
    let cpu = run::<E, Cpu, BatchNorm2d<E, Cpu, 3, 5, 4>>(&Cpu, c, bn_grads);
    let cuda = run::<E, Cuda, BatchNorm2d<E, Cuda, 3, 5, 4>>(&device(), c, bn_grads);
    compare("batch_norm 2d", cpu, cuda);
    let cpu = run::<E, Cpu, BatchNorm1d<E, Cpu, 7>>(&Cpu, c, bn_grads);
    let cuda = run::<E, Cuda, BatchNorm1d<E, Cuda, 7>>(&device(), c, bn_grads);
    compare("batch_norm 1d", cpu, cuda);
    for mode in [UpsampleMode::Nearest, UpsampleMode::Bilinear] {
        let u = UpsampleConfig {
            mode,
            ..Default::default()
        };
        let cpu = run::<E, Cpu, Upsample<2, 3, 4, 6, 8>>(&Cpu, u, no_grads);
        let cuda = run::<E, Cuda, Upsample<2, 3, 4, 6, 8>>(&device(), u, no_grads);
        compare(&format!("upsample {mode:?}"), cpu, cuda);
    }
}

fn prelu_grads<E: Elem, D: Kernels<E>, const C: usize>(g: &PReluGrads<E, D, C>) -> Vec<Vec<E>> {
    vec![g.weight.to_vec().unwrap()]
}

fn activations<E: Elem>() {
    let c = PReluConfig { init: -0.3 };
    let cpu = run::<E, Cpu, PRelu<E, Cpu, S3<3, 5, 4>, 3>>(&Cpu, c, prelu_grads);
    let cuda = run::<E, Cuda, PRelu<E, Cuda, S3<3, 5, 4>, 3>>(&device(), c, prelu_grads);
    compare("prelu per channel", cpu, cuda);
    let cpu = run::<E, Cpu, PRelu<E, Cpu, S3<3, 5, 4>, 1>>(&Cpu, c, prelu_grads);
    let cuda = run::<E, Cuda, PRelu<E, Cuda, S3<3, 5, 4>, 1>>(&device(), c, prelu_grads);
    compare("prelu shared", cpu, cuda);
    for tanh in [false, true] {
        let l = if tanh {
            Gelu::<S3<3, 5, 4>>::approximate_tanh()
        } else {
            Gelu::default()
        };
        let cpu = run_stateless::<E, Cpu, _>(&Cpu, &l);
        let cuda = run_stateless::<E, Cuda, _>(&device(), &l);
        compare(&format!("gelu (tanh: {tanh})"), cpu, cuda);
    }
}

/// [`run`] for a layer without parameters or cache, built by the caller.
fn run_stateless<E: Elem, D: Kernels<E>, L: Layer<E, D, Cache = (), Grads = ()>>(
    dev: &D,
    layer: &L,
) -> (Vec<E>, Vec<E>, Vec<Vec<E>>) {
    let batch = 3;
    let mut r = rng(9);
    let xv: Vec<E> = common::rand_vec(&mut r, batch * L::In::NUMEL, 3.0);
    let dyv: Vec<E> = common::rand_vec(&mut r, batch * L::Out::NUMEL, 1.0);
    let x = Tensor::<L::In, E, D>::from_slice(dev, &xv).unwrap();
    let dy = Tensor::<L::Out, E, D>::from_slice(dev, &dyv).unwrap();
    let (mut y, mut dx) = (Tensor::empty(dev).unwrap(), Tensor::empty(dev).unwrap());
    layer.forward(&x, &mut y, &mut ()).unwrap();
    layer
        .backward(
            &x,
            &y,
            &mut (),
            &dy,
            Some((&mut dx, Acc::Set)),
            &mut (),
            Acc::Set,
        )
        .unwrap();
    (y.to_vec().unwrap(), dx.to_vec().unwrap(), Vec::new())
}

fn ln_grads<E: Elem, D: Kernels<E>, const N: usize>(g: &LayerNormGrads<E, D, N>) -> Vec<Vec<E>> {
    [&g.weight, &g.bias]
        .into_iter()
        .flatten()
        .map(|t| t.to_vec().unwrap())
        .collect()
}

fn layer_norms<E: Elem>() {
    let d = LayerNormConfig::default();
    let cfgs = [
        ("layer_norm", d),
        (
            "layer_norm bias = false",
            LayerNormConfig { bias: false, ..d },
        ),
        (
            "layer_norm elementwise_affine = false",
            LayerNormConfig {
                elementwise_affine: false,
                ..d
            },
        ),
    ];
    for (name, c) in cfgs {
        let cpu = run::<E, Cpu, LayerNorm<E, Cpu, S3<2, 3, 37>, 37>>(&Cpu, c, ln_grads);
        let cuda = run::<E, Cuda, LayerNorm<E, Cuda, S3<2, 3, 37>, 37>>(&device(), c, ln_grads);
        compare(name, cpu, cuda);
    }
}

#[test]
fn layer_norm_layers_agree() {
    layer_norms::<f32>();
    layer_norms::<f64>();
}

/// `L2Normalize` on rows of 37 (rank 3), with PyTorch's ε and with an ε
/// above some rows' norms (inputs in ±3, rows of 2: the clamped branch).
fn l2_normalizes<E: Elem>() {
    let l = L2Normalize::<S3<2, 3, 37>>::default();
    let cpu = run_stateless::<E, Cpu, _>(&Cpu, &l);
    let cuda = run_stateless::<E, Cuda, _>(&device(), &l);
    compare("l2_normalize", cpu, cuda);
    let l = L2Normalize::<S3<4, 5, 2>>::new(2.5);
    let cpu = run_stateless::<E, Cpu, _>(&Cpu, &l);
    let cuda = run_stateless::<E, Cuda, _>(&device(), &l);
    compare("l2_normalize eps = 2.5", cpu, cuda);
}

#[test]
fn l2_normalize_layers_agree() {
    l2_normalizes::<f32>();
    l2_normalizes::<f64>();
}

#[test]
fn prelu_and_gelu_layers_agree() {
    activations::<f32>();
    activations::<f64>();
}

#[test]
fn norm_and_upsampling_layers_agree() {
    norms_and_upsampling::<f32>();
    norms_and_upsampling::<f64>();
}

#[test]
fn conv_layers_agree_f32() {
    convs::<f32>();
}

#[test]
fn conv_layers_agree_f64() {
    convs::<f64>();
}

#[test]
fn pool_and_dropout_layers_agree() {
    pools::<f32>();
    pools::<f64>();
}

/// An embedding with a padding row and repeated ids, followed by the
/// per-position cross-entropy with `ignore_index`: output, loss, logits
/// gradient and table gradient on device `D`.
fn embedding_step<E: Elem, D: Kernels<E>>(dev: &D) -> (Vec<E>, Vec<E>, Vec<Vec<E>>) {
    use kiln_core::layers::{Embedding, EmbeddingConfig, TokenLayer};
    use kiln_core::{Module, Tokens, S1, S2};
    let cfg = EmbeddingConfig {
        padding_idx: Some(3),
        ..Default::default()
    };
    let mut e = Embedding::<E, D, 11, 11>::build(dev, &mut rng(2), cfg).unwrap();
    let mut r = rng(3);
    let ids: Vec<u32> = (0..4 * 9).map(|i| ((i * 7 + i / 5) % 11) as u32).collect();
    let targets: Vec<u32> = ids.iter().map(|&i| (i * 3 + 1) % 11).collect();
    let x = Tokens::<S1<9>, 11, D>::new::<E>(dev, &ids).unwrap();
    let t = Tokens::<S1<9>, 11, D>::new::<E>(dev, &targets).unwrap();
    let mut y = Tensor::<S2<9, 11>, E, D>::empty(dev).unwrap();
    e.forward_train(&x, &mut y, &mut (), &mut TrainCtx::new(0))
        .unwrap();
    let mut dy = Tensor::empty(dev).unwrap();
    let loss =
        kiln_core::loss::cross_entropy_tokens(&y, &t, Some(targets[0]), Some(&mut dy)).unwrap();
    // a second contribution, so both Acc modes of the scatter-add run
    let extra: Vec<E> = common::rand_vec(&mut r, 4 * 9 * 11, 1.0);
    let extra = Tensor::<S2<9, 11>, E, D>::from_slice(dev, &extra).unwrap();
    let mut g = e.grads().unwrap();
    e.backward(&x, &y, &mut (), &dy, &mut g, Acc::Set).unwrap();
    e.backward(&x, &y, &mut (), &extra, &mut g, Acc::Add)
        .unwrap();
    let mut out = y.to_vec().unwrap();
    out.push(loss);
    (out, dy.to_vec().unwrap(), vec![g.weight.to_vec().unwrap()])
}

#[test]
fn embedding_and_per_position_cross_entropy_agree() {
    let d = device();
    compare::<f32>(
        "embedding + cross_entropy_tokens",
        embedding_step(&Cpu),
        embedding_step(&d),
    );
    compare::<f64>(
        "embedding + cross_entropy_tokens",
        embedding_step(&Cpu),
        embedding_step(&d),
    );
}

fn lstm_grads<E: Elem, D: Kernels<E>, const I: usize, const H: usize, const G: usize>(
    g: &LstmGrads<E, D, I, H, G>,
) -> Vec<Vec<E>> {
    let mut v = vec![g.weight_ih.to_vec().unwrap(), g.weight_hh.to_vec().unwrap()];
    v.extend(
        [&g.bias_ih, &g.bias_hh]
            .into_iter()
            .flatten()
            .map(|t| t.to_vec().unwrap()),
    );
    v
}

fn lstms<E: Elem>() {
    for (name, c) in [
        ("lstm", LstmConfig::default()),
        ("lstm bias = false", LstmConfig { bias: false }),
    ] {
        let cpu = run::<E, Cpu, Lstm<E, Cpu, 5, 3, 6, 24>>(&Cpu, c, lstm_grads);
        let cuda = run::<E, Cuda, Lstm<E, Cuda, 5, 3, 6, 24>>(&device(), c, lstm_grads);
        compare(name, cpu, cuda);
    }
}

#[test]
fn lstm_layers_agree() {
    lstms::<f32>();
    lstms::<f64>();
}

fn gru_grads<E: Elem, D: Kernels<E>, const I: usize, const H: usize, const G: usize>(
    g: &GruGrads<E, D, I, H, G>,
) -> Vec<Vec<E>> {
    let mut v = vec![g.weight_ih.to_vec().unwrap(), g.weight_hh.to_vec().unwrap()];
    v.extend(
        [&g.bias_ih, &g.bias_hh]
            .into_iter()
            .flatten()
            .map(|t| t.to_vec().unwrap()),
    );
    v
}

fn grus<E: Elem>() {
    for (name, c) in [
        ("gru", GruConfig::default()),
        ("gru bias = false", GruConfig { bias: false }),
    ] {
        let cpu = run::<E, Cpu, Gru<E, Cpu, 5, 3, 6, 18>>(&Cpu, c, gru_grads);
        let cuda = run::<E, Cuda, Gru<E, Cuda, 5, 3, 6, 18>>(&device(), c, gru_grads);
        compare(name, cpu, cuda);
    }
}

#[test]
fn gru_layers_agree() {
    grus::<f32>();
    grus::<f64>();
}

fn rnn_grads<E: Elem, D: Kernels<E>, const I: usize, const H: usize>(
    g: &RnnGrads<E, D, I, H>,
) -> Vec<Vec<E>> {
    let mut v = vec![g.weight_ih.to_vec().unwrap(), g.weight_hh.to_vec().unwrap()];
    v.extend(
        [&g.bias_ih, &g.bias_hh]
            .into_iter()
            .flatten()
            .map(|t| t.to_vec().unwrap()),
    );
    v
}

fn rnns<E: Elem>() {
    let relu = RnnConfig {
        nonlinearity: RnnNonlinearity::Relu,
        ..RnnConfig::default()
    };
    for (name, c) in [
        ("rnn", RnnConfig::default()),
        ("rnn relu", relu),
        (
            "rnn relu bias = false",
            RnnConfig {
                bias: false,
                ..relu
            },
        ),
    ] {
        let cpu = run::<E, Cpu, Rnn<E, Cpu, 5, 3, 6>>(&Cpu, c, rnn_grads);
        let cuda = run::<E, Cuda, Rnn<E, Cuda, 5, 3, 6>>(&device(), c, rnn_grads);
        compare(name, cpu, cuda);
    }
}

#[test]
fn rnn_layers_agree() {
    rnns::<f32>();
    rnns::<f64>();
}

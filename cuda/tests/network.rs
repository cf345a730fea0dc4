//! A whole generated network trains the same on the CUDA device as on the CPU:
//! forward, loss, hand-derived backward (gradient agreement) and Adam steps,
//! through `kiln::network!` with nothing changed but the device value.
//!
//! The device is the host emulation by default, GPU 0 with `KILN_TEST_GPU=1`.

use crate::common;

use kiln::prelude::*;
use kiln_core::kernels::Kernels;
use kiln_cuda::Cuda;

kiln::network! {
    /// A small MLP with every activation kind the CUDA kernels implement.
    pub struct Mlp {
        input: [12],
        fc1: Linear(40),
        relu,
        fc2: Linear(33),
        tanh,
        fc3: Linear(5),
    }
}

kiln::network! {
    /// The layers of issue 10 part 4: exact and tanh GELU, shared and
    /// per-feature PReLU, LayerNorm with and without bias.
    pub struct NewLayers {
        input: [12],
        fc1: Linear(24),
        ln1: LayerNorm,
        gelu,
        act1: PReLU,
        fc2: Linear(16),
        Gelu(approximate = "tanh"),
        act2: PReLU(16),
        ln2: LayerNorm(16, bias = false),
        fc3: Linear(5),
    }
}

kiln::network! {
    /// `L2Normalize` at the positions of a `[4, 6]` view and on a vector
    /// with an ε above some rows' norms (the clamped branch).
    pub struct L2Layers {
        input: [12],
        fc1: Linear(24),
        Reshape([4, 6]),
        L2Normalize,
        flatten,
        fc2: Linear(16),
        tanh,
        l2_normalize(eps = 2.0),
        fc3: Linear(5),
    }
}

fn device() -> Cuda {
    if std::env::var("KILN_TEST_GPU").as_deref() == Ok("1") {
        Cuda::new(0).unwrap()
    } else {
        common::emulated()
    }
}

/// The parts of a network [`train`] reads.
trait Net<E: Elem, D: Kernels<E>>: Module<E, D> + Sized {
    type Tape;
    fn make(dev: &D) -> Self;
    fn tape(&self) -> Self::Tape;
    fn fwd_train<'t>(
        &mut self,
        x: &Tensor<S1<12>, E, D>,
        t: &'t mut Self::Tape,
    ) -> &'t Tensor<S1<5>, E, D>;
    fn bwd(&mut self, t: &mut Self::Tape, d: &Tensor<S1<5>, E, D>, g: &mut Self::Grads);
    fn fwd(&self, x: &Tensor<S1<12>, E, D>) -> Vec<E>;
    fn fc1_grad(g: &Self::Grads) -> Vec<E>;
}

macro_rules! net {
    ($t:ident, $tape:ident) => {
        impl<E: Elem, D: Kernels<E>> Net<E, D> for $t<E, D> {
            type Tape = $tape<E, D>;
            fn make(dev: &D) -> Self {
                $t::<E, D>::init(dev, &mut rng(3)).unwrap()
            }
            fn tape(&self) -> Self::Tape {
                $t::tape(self).unwrap()
            }
            fn fwd_train<'t>(
                &mut self,
                x: &Tensor<S1<12>, E, D>,
                t: &'t mut Self::Tape,
            ) -> &'t Tensor<S1<5>, E, D> {
                self.forward_train(x, t).unwrap()
            }
            fn bwd(&mut self, t: &mut Self::Tape, d: &Tensor<S1<5>, E, D>, g: &mut Self::Grads) {
                self.backward(t, d, g).unwrap()
            }
            fn fwd(&self, x: &Tensor<S1<12>, E, D>) -> Vec<E> {
                self.forward(x).unwrap().to_vec().unwrap()
            }
            fn fc1_grad(g: &Self::Grads) -> Vec<E> {
                g.fc1.weight.to_vec().unwrap()
            }
        }
    };
}
net!(Mlp, MlpTape);
net!(NewLayers, NewLayersTape);
net!(L2Layers, L2LayersTape);

/// (loss per step, fc1 weight gradient of the last step, final logits)
fn train<E: Elem, D: Kernels<E>, N: Net<E, D>>(
    dev: &D,
    steps: usize,
) -> (Vec<f64>, Vec<E>, Vec<E>) {
    let mut net = N::make(dev);
    let (mut tape, mut grads) = (net.tape(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 37;
    let xs: Vec<E> = (0..batch * 12)
        .map(|i| E::of(((i * 7919 % 101) as f64 / 50.0) - 1.0))
        .collect();
    let ys: Vec<u32> = (0..batch).map(|i| (i * 13 % 5) as u32).collect();
    let x = Tensor::<S1<12>, E, D>::from_slice(dev, &xs).unwrap();
    let y = Labels::<5, D>::new::<E>(dev, &ys).unwrap();
    let mut dlogits = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.fwd_train(&x, &mut tape);
        losses.push(cross_entropy(logits, &y, Some(&mut dlogits)).unwrap().f64());
        net.bwd(&mut tape, &dlogits, &mut grads);
        opt.step(&mut net, &grads).unwrap();
    }
    let g = N::fc1_grad(&grads);
    let logits = net.fwd(&x);
    (losses, g, logits)
}

fn agree<E: Elem>(tol: f64) {
    agree_on::<E, Mlp<E, Cpu>, Mlp<E, Cuda>>(tol, 5);
}

fn agree_on<E: Elem, C: Net<E, Cpu>, G: Net<E, Cuda>>(tol: f64, steps: usize) {
    let dev = device();
    let (lc, gc, oc) = train::<E, Cpu, C>(&Cpu, steps);
    let (lg, gg, og) = train::<E, Cuda, G>(&dev, steps);
    let lc: Vec<E> = lc.iter().map(|v| E::of(*v)).collect();
    let lg: Vec<E> = lg.iter().map(|v| E::of(*v)).collect();
    println!("{}: losses cpu {lc:?} / cuda {lg:?}", E::NAME);
    common::check("loss per step", &lg, &lc, tol);
    common::check("fc1.weight gradient", &gg, &gc, tol);
    common::check("logits after the Adam steps", &og, &oc, tol);
    assert!(lg[steps - 1] < lg[0], "training does not reduce the loss");
}

#[test]
fn mlp_trains_like_on_the_cpu_f32() {
    agree::<f32>(1e-4);
}

#[test]
fn mlp_trains_like_on_the_cpu_f64() {
    agree::<f64>(1e-10);
}

/// GELU (both forms), PReLU (shared and per feature) and LayerNorm (with and
/// without bias): two Adam steps on the CUDA emulation match the CPU.
#[test]
fn new_layers_train_like_on_the_cpu() {
    agree_on::<f32, NewLayers<f32, Cpu>, NewLayers<f32, Cuda>>(1e-4, 2);
    agree_on::<f64, NewLayers<f64, Cpu>, NewLayers<f64, Cuda>>(1e-10, 2);
}

/// `L2Normalize` (PyTorch's ε on `[4, 6]`, ε = 2 on `[16]`): two Adam
/// steps on the CUDA emulation match the CPU.
#[test]
fn l2_normalize_trains_like_on_the_cpu() {
    agree_on::<f32, L2Layers<f32, Cpu>, L2Layers<f32, Cuda>>(1e-4, 2);
    agree_on::<f64, L2Layers<f64, Cpu>, L2Layers<f64, Cuda>>(1e-10, 2);
}

kiln::network! {
    /// A token model: ids → Embedding (with a padding row) → Linear over
    /// every position, trained with per-position cross-entropy.
    pub struct TokenNet {
        input ids: Tokens<[6], 9>,
        let h = ids |> emb: Embedding(9, 8, padding_idx = 0) |> fc1: Linear(10) |> gelu;
        output logits = h |> fc2: Linear(9);
    }
}

/// (loss per step, embedding-table gradient of the last step, final logits)
fn train_tokens<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = TokenNet::<E, D>::init(dev, &mut rng(5)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 7;
    let ids: Vec<u32> = (0..batch * 6).map(|i| (i * 5 % 9) as u32).collect();
    let next: Vec<u32> = (0..batch * 6).map(|i| ((i * 5 + 5) % 9) as u32).collect();
    let x = Tokens::<S1<6>, 9, D>::new::<E>(dev, &ids).unwrap();
    let y = Tokens::<S1<6>, 9, D>::new::<E>(dev, &next).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        let l = kiln::loss::cross_entropy_tokens(logits, &y, Some(0), Some(&mut d)).unwrap();
        losses.push(l);
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let g = grads.emb.weight.to_vec().unwrap();
    let out = net.forward(&x).unwrap().to_vec().unwrap();
    (losses, g, out)
}

/// Embedding (gather, scatter-add with a padding row) and per-position
/// cross-entropy with `ignore_index`: two Adam steps of a token network on the
/// CUDA emulation match the CPU.
#[test]
fn token_network_trains_like_on_the_cpu() {
    let dev = device();
    let (lc, gc, oc) = train_tokens::<f64, Cpu>(&Cpu, 2);
    let (lg, gg, og) = train_tokens::<f64, Cuda>(&dev, 2);
    common::check("loss per step", &lg, &lc, 1e-10);
    common::check("emb.weight gradient", &gg, &gc, 1e-10);
    common::check("logits after the Adam steps", &og, &oc, 1e-10);
    assert!(lg[1] < lg[0], "training does not reduce the loss");
    // The padding row (id 0) received no gradient.
    assert!(gc[..8].iter().all(|&v| v == 0.0));
}

kiln::network! {
    /// A recurrent token model: ids → Embedding → LSTM → Linear.
    pub struct LstmNet {
        input: Tokens<[5], 9>,
        emb: Embedding(9, 6),
        rnn: LSTM(7),
        fc: Linear(9),
    }
}

/// (loss per step, LSTM W_hh gradient of the last step, final logits)
fn train_lstm<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = LstmNet::<E, D>::init(dev, &mut rng(8)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 4;
    let ids: Vec<u32> = (0..batch * 5).map(|i| (i * 4 % 9) as u32).collect();
    let next: Vec<u32> = (0..batch * 5).map(|i| ((i * 4 + 4) % 9) as u32).collect();
    let x = Tokens::<S1<5>, 9, D>::new::<E>(dev, &ids).unwrap();
    let y = Tokens::<S1<5>, 9, D>::new::<E>(dev, &next).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        losses.push(kiln::loss::cross_entropy_tokens(logits, &y, None, Some(&mut d)).unwrap());
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let g = grads.rnn.weight_hh.to_vec().unwrap();
    let out = net.forward(&x).unwrap().to_vec().unwrap();
    (losses, g, out)
}

/// The LSTM (input GEMM, per-step recurrent GEMMs with strided rows, the
/// cell kernels, backpropagation through time): two Adam steps on the CUDA
/// emulation match the CPU.
#[test]
fn lstm_network_trains_like_on_the_cpu() {
    let dev = device();
    let (lc, gc, oc) = train_lstm::<f64, Cpu>(&Cpu, 2);
    let (lg, gg, og) = train_lstm::<f64, Cuda>(&dev, 2);
    common::check("loss per step", &lg, &lc, 1e-10);
    common::check("rnn.weight_hh_l0 gradient", &gg, &gc, 1e-10);
    common::check("logits after the Adam steps", &og, &oc, 1e-10);
    assert!(lg[1] < lg[0], "training does not reduce the loss");
    let (l32, _, _) = train_lstm::<f32, Cuda>(&dev, 2);
    common::check(
        "f32 loss per step",
        &l32,
        &train_lstm::<f32, Cpu>(&Cpu, 2).0,
        1e-4,
    );
}

kiln::network! {
    /// A stacked bidirectional recurrent model: ids → Embedding → 2-layer
    /// bidirectional LSTM (dropout 0.3 between the layers) → 2-layer
    /// bidirectional GRU returning its final states → Linear.
    pub struct StackNet {
        input: Tokens<[5], 9>,
        emb: Embedding(9, 6),
        rnn: LSTM(5, num_layers = 2, bidirectional = true, dropout = 0.3),
        gru: GRU(4, num_layers = 2, bidirectional = true, last = true),
        fc: Linear(3),
    }
}

/// (loss per step, the reverse direction's layer-1 LSTM W_hh gradient of
/// the last step, final outputs)
fn train_stack<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = StackNet::<E, D>::init(dev, &mut rng(9)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 4;
    let ids: Vec<u32> = (0..batch * 5).map(|i| (i * 4 % 9) as u32).collect();
    let x = Tokens::<S1<5>, 9, D>::new::<E>(dev, &ids).unwrap();
    let y = Labels::<3, D>::new::<E>(dev, &[0, 2, 1, 2]).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        losses.push(kiln::loss::cross_entropy(logits, &y, Some(&mut d)).unwrap());
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let g = grads.rnn.upper[1].weight_hh.to_vec().unwrap();
    let out = net.forward(&x).unwrap().to_vec().unwrap();
    (losses, g, out)
}

/// Stacking, both directions, dropout between layers (the same mask from the
/// same seed on both devices) and the last-state output: two Adam steps on
/// the CUDA emulation match the CPU (the cells' kernels are the one-layer
/// ones; the stack adds strided copies and dropout).
#[test]
fn stacked_bidirectional_network_trains_like_on_the_cpu() {
    let dev = device();
    let (lc, gc, oc) = train_stack::<f64, Cpu>(&Cpu, 2);
    let (lg, gg, og) = train_stack::<f64, Cuda>(&dev, 2);
    common::check("loss per step", &lg, &lc, 1e-10);
    common::check("rnn.weight_hh_l1_reverse gradient", &gg, &gc, 1e-10);
    common::check("outputs after the Adam steps", &og, &oc, 1e-10);
    assert!(lg[1] < lg[0], "training does not reduce the loss");
}

kiln::network! {
    /// A recurrent token model: ids → Embedding → GRU → Linear.
    pub struct GruNet {
        input: Tokens<[5], 9>,
        emb: Embedding(9, 6),
        rnn: GRU(7),
        fc: Linear(9),
    }
}

/// (loss per step, GRU W_hh gradient of the last step, final logits)
fn train_gru<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = GruNet::<E, D>::init(dev, &mut rng(8)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 4;
    let ids: Vec<u32> = (0..batch * 5).map(|i| (i * 4 % 9) as u32).collect();
    let next: Vec<u32> = (0..batch * 5).map(|i| ((i * 4 + 4) % 9) as u32).collect();
    let x = Tokens::<S1<5>, 9, D>::new::<E>(dev, &ids).unwrap();
    let y = Tokens::<S1<5>, 9, D>::new::<E>(dev, &next).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        losses.push(kiln::loss::cross_entropy_tokens(logits, &y, None, Some(&mut d)).unwrap());
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let g = grads.rnn.weight_hh.to_vec().unwrap();
    let out = net.forward(&x).unwrap().to_vec().unwrap();
    (losses, g, out)
}

/// The GRU (input GEMM, per-step recurrent GEMMs with strided rows, the
/// cell kernels, backpropagation through time): two Adam steps on the CUDA
/// emulation match the CPU.
#[test]
fn gru_network_trains_like_on_the_cpu() {
    let dev = device();
    let (lc, gc, oc) = train_gru::<f64, Cpu>(&Cpu, 2);
    let (lg, gg, og) = train_gru::<f64, Cuda>(&dev, 2);
    common::check("loss per step", &lg, &lc, 1e-10);
    common::check("rnn.weight_hh_l0 gradient", &gg, &gc, 1e-10);
    common::check("logits after the Adam steps", &og, &oc, 1e-10);
    assert!(lg[1] < lg[0], "training does not reduce the loss");
    let (l32, _, _) = train_gru::<f32, Cuda>(&dev, 2);
    common::check(
        "f32 loss per step",
        &l32,
        &train_gru::<f32, Cpu>(&Cpu, 2).0,
        1e-4,
    );
}

kiln::network! {
    /// Elman RNNs over tokens: ids → Embedding → RNN (relu) → RNN (tanh) → Linear.
    pub struct RnnNet {
        input: Tokens<[5], 9>,
        emb: Embedding(9, 6),
        r1: RNN(7, nonlinearity = "relu"),
        rnn: RNN(7),
        fc: Linear(9),
    }
}

/// (loss per step, second RNN's W_hh gradient of the last step, final logits)
fn train_rnn<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = RnnNet::<E, D>::init(dev, &mut rng(8)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 4;
    let ids: Vec<u32> = (0..batch * 5).map(|i| (i * 4 % 9) as u32).collect();
    let next: Vec<u32> = (0..batch * 5).map(|i| ((i * 4 + 4) % 9) as u32).collect();
    let x = Tokens::<S1<5>, 9, D>::new::<E>(dev, &ids).unwrap();
    let y = Tokens::<S1<5>, 9, D>::new::<E>(dev, &next).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        losses.push(kiln::loss::cross_entropy_tokens(logits, &y, None, Some(&mut d)).unwrap());
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let g = grads.rnn.weight_hh.to_vec().unwrap();
    let out = net.forward(&x).unwrap().to_vec().unwrap();
    (losses, g, out)
}

/// The Elman RNN (input GEMM, per-step recurrent GEMMs with strided rows, the
/// cell kernels with relu and tanh, backpropagation through time): two Adam
/// steps on the CUDA emulation match the CPU.
#[test]
fn rnn_network_trains_like_on_the_cpu() {
    let dev = device();
    let (lc, gc, oc) = train_rnn::<f64, Cpu>(&Cpu, 2);
    let (lg, gg, og) = train_rnn::<f64, Cuda>(&dev, 2);
    common::check("loss per step", &lg, &lc, 1e-10);
    common::check("rnn.weight_hh_l0 gradient", &gg, &gc, 1e-10);
    common::check("logits after the Adam steps", &og, &oc, 1e-10);
    assert!(lg[1] < lg[0], "training does not reduce the loss");
    let (l32, _, _) = train_rnn::<f32, Cuda>(&dev, 2);
    common::check(
        "f32 loss per step",
        &l32,
        &train_rnn::<f32, Cpu>(&Cpu, 2).0,
        1e-4,
    );
}

kiln::network! {
    /// Attention on both paths: a source with sinusoidal positions encoded
    /// by padded self-attention, a target with learned positions by causal
    /// self-attention, then cross-attention over the source with its
    /// padding masked.
    pub struct AttnNet {
        input src: Tokens<[6], 9>,
        input tgt: Tokens<[5], 9>,
        let enc = src |> semb: Embedding(9, 8) |> spos: SinusoidalPositions
            |> enc_attn: MultiHeadAttention(8, heads = 2, key_padding = src == 0);
        let dec = tgt |> temb: Embedding(9, 8) |> tpos: PositionalEmbedding(7, init = normal(0.1))
            |> dec_attn: MultiHeadAttention(8, heads = 2, causal = true);
        let x = dec |> cross: MultiHeadAttention(8, heads = 4, memory = enc, key_padding = src == 0);
        output logits = x + dec |> fc: Linear(9);
    }
}

/// (loss per step, cross-attention in_proj_weight gradient of the last
/// step, final logits)
fn train_attn<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = AttnNet::<E, D>::init(dev, &mut rng(9)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 3;
    // Sample b has 6 − b source tokens, then padding (id 0).
    let src: Vec<u32> = (0..batch * 6)
        .map(|i| {
            if i % 6 >= 6 - i / 6 {
                0
            } else {
                1 + (i * 5 % 8) as u32
            }
        })
        .collect();
    let tgt: Vec<u32> = (0..batch * 5).map(|i| 1 + (i * 3 % 8) as u32).collect();
    let next: Vec<u32> = (0..batch * 5)
        .map(|i| 1 + ((i * 3 + 3) % 8) as u32)
        .collect();
    let s = Tokens::<S1<6>, 9, D>::new::<E>(dev, &src).unwrap();
    let t = Tokens::<S1<5>, 9, D>::new::<E>(dev, &tgt).unwrap();
    let y = Tokens::<S1<5>, 9, D>::new::<E>(dev, &next).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let logits = net.forward_train(&s, &t, &mut tape).unwrap();
        losses.push(kiln::loss::cross_entropy_tokens(logits, &y, None, Some(&mut d)).unwrap());
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let mut g = grads.cross.in_proj_weight.to_vec().unwrap();
    g.extend(grads.tpos.to_vec().unwrap());
    let out = net.forward(&s, &t).unwrap().to_vec().unwrap();
    (losses, g, out)
}

/// Multi-head attention (projections, per-head batched GEMMs, the masked
/// softmax kernels with causal and key-padding masks, cross-attention's
/// memory gradient) and both positional encodings (a table broadcast with a
/// source stride of 0): two Adam steps on the CUDA emulation match the CPU.
#[test]
fn attention_network_trains_like_on_the_cpu() {
    let dev = device();
    let (lc, gc, oc) = train_attn::<f64, Cpu>(&Cpu, 2);
    let (lg, gg, og) = train_attn::<f64, Cuda>(&dev, 2);
    common::check("loss per step", &lg, &lc, 1e-10);
    common::check(
        "cross.in_proj_weight and tpos.weight gradients",
        &gg,
        &gc,
        1e-10,
    );
    common::check("logits after the Adam steps", &og, &oc, 1e-10);
    assert!(lg[1] < lg[0], "training does not reduce the loss");
    let (l32, _, _) = train_attn::<f32, Cuda>(&dev, 2);
    common::check(
        "f32 loss per step",
        &l32,
        &train_attn::<f32, Cpu>(&Cpu, 2).0,
        1e-4,
    );
}

kiln::network! {
    /// Truncated BPTT: a 2-layer GRU started from the state `s0` and ending
    /// in `state`, which the next step feeds back.
    pub struct StateNet {
        input ids: Tokens<[5], 9>,
        input s0: [2, 6],
        let y = ids |> emb: Embedding(9, 4) |> gru: GRU(6, num_layers = 2, state = s0);
        output logits = y |> fc: Linear(9);
        output state = y |> FinalState(gru);
    }
}

/// (loss per step, the GRU's layer-0 W_hh gradient of the last step, the
/// final state after the last step)
fn train_state<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = StateNet::<E, D>::init(dev, &mut rng(10)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 4;
    let ids: Vec<u32> = (0..batch * 5).map(|i| (i * 4 % 9) as u32).collect();
    let next: Vec<u32> = (0..batch * 5).map(|i| ((i * 4 + 4) % 9) as u32).collect();
    let x = Tokens::<S1<5>, 9, D>::new::<E>(dev, &ids).unwrap();
    let y = Tokens::<S1<5>, 9, D>::new::<E>(dev, &next).unwrap();
    let zeros = vec![E::zero(); batch * 12];
    let mut s = Tensor::<S2<2, 6>, E, D>::from_vec(dev, batch, zeros.clone()).unwrap();
    let ds = Tensor::<S2<2, 6>, E, D>::from_vec(dev, batch, zeros).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let (logits, state) = net.forward_train(&x, &s, &mut tape).unwrap();
        losses.push(kiln::loss::cross_entropy_tokens(logits, &y, None, Some(&mut d)).unwrap());
        s.assign(state).unwrap();
        net.backward(&mut tape, &d, &ds, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let g = grads.gru.first[0].weight_hh.to_vec().unwrap();
    (losses, g, s.to_vec().unwrap())
}

/// A carried state (the GRU kernels' `h0` at step 0, the step-0 products,
/// the final state read from the cache): two Adam steps with the state fed
/// back on the CUDA emulation match the CPU.
#[test]
fn carried_state_trains_like_on_the_cpu() {
    let dev = device();
    let (lc, gc, sc) = train_state::<f64, Cpu>(&Cpu, 2);
    let (lg, gg, sg) = train_state::<f64, Cuda>(&dev, 2);
    common::check("loss per step", &lg, &lc, 1e-10);
    common::check("gru.weight_hh_l0 gradient", &gg, &gc, 1e-10);
    common::check("carried state", &sg, &sc, 1e-10);
    assert!(sc.iter().any(|v| v.abs() > 1e-3), "the state stayed zero");
}

kiln::network! {
    /// A one-block decoder for key/value-cached decoding.
    pub struct DecNet {
        input ids: Tokens<[5], 9>,
        let e = ids |> emb: Embedding(9, 8) |> pos: PositionalEmbedding(5, init = normal(0.5));
        let a = e |> ln: LayerNorm |> attn: MultiHeadAttention(8, heads = 2, causal = true);
        output logits = a + e |> fc: Linear(9);
    }
}

/// Decodes 5 positions of 3 sequences one at a time through
/// `MultiHeadAttention::attend_step` and the row-wise entry points of the
/// other layers; every position's logits, in order.
fn decode<E: Elem, D: Kernels<E>>(dev: &D) -> Vec<E> {
    let net = DecNet::<E, D>::init(dev, &mut rng(12)).unwrap();
    let batch = 3;
    let mut cache = net.attn.kv_cache(batch).unwrap();
    let mut ln = net.ln.cache().unwrap();
    let mut ids = Tokens::<S1<1>, 9, D>::zeros::<E>(dev, batch).unwrap();
    let (mut e, mut n, mut a) = (
        Tensor::<S1<8>, E, D>::empty(dev).unwrap(),
        Tensor::<S1<8>, E, D>::empty(dev).unwrap(),
        Tensor::<S1<8>, E, D>::empty(dev).unwrap(),
    );
    let mut y = Tensor::<S1<9>, E, D>::empty(dev).unwrap();
    let mut out = Vec::new();
    for t in 0..5 {
        let step: Vec<u32> = (0..batch).map(|b| ((t * 7 + b * 3) % 9) as u32).collect();
        ids.set::<E>(&step).unwrap();
        net.emb.lookup_rows(&ids, &mut e).unwrap();
        net.pos.add_position(t, &mut e).unwrap();
        net.ln.forward_rows(&e, &mut n, &mut ln).unwrap();
        net.attn.attend_step(&n, &mut cache, &mut a).unwrap();
        dev.axpy(E::one(), e.buf(), a.buf_mut(), batch * 8, Acc::Add)
            .unwrap();
        net.fc.forward_rows(&a, &mut y).unwrap();
        out.extend(y.to_vec().unwrap());
    }
    out
}

/// Key/value-cached decoding (the cache append as a strided block copy,
/// one-query attention through the batched GEMMs and the masked softmax,
/// the positional row broadcast, row-wise LayerNorm and Linear) on the CUDA
/// emulation matches the CPU.
#[test]
fn cached_decoding_matches_the_cpu() {
    let dev = device();
    common::check(
        "decoded logits",
        &decode::<f64, Cuda>(&dev),
        &decode::<f64, Cpu>(&Cpu),
        1e-10,
    );
    common::check(
        "f32 decoded logits",
        &decode::<f32, Cuda>(&dev),
        &decode::<f32, Cpu>(&Cpu),
        1e-4,
    );
}

kiln::network! {
    /// A decoder block of two inputs, nested below.
    pub struct DecBlock {
        input x: [4, 8],
        input memory: [5, 8],
        let a = x |> ln1: LayerNorm |> attn: MultiHeadAttention(8, heads = 2, causal = true);
        let h = a + x;
        let c = h |> ln2: LayerNorm |> cross: MultiHeadAttention(8, heads = 2, memory = memory);
        output y = c + h;
    }
}

kiln::network! {
    /// The block nested twice with its second input named (`kiln::Layer2`).
    pub struct NestedSeq2Seq {
        input src: [5, 8],
        input tgt: [4, 8],
        let m = src |> enc: Linear(8) |> tanh;
        let d = tgt |> dec1: DecBlock(m) -> [4, 8] |> dec2: DecBlock(m) -> [4, 8];
        output y = d |> head: Linear(3);
    }
}

/// (loss per step, dec2.cross.in_proj_weight and enc.weight gradients, final outputs)
fn train_nested<E: Elem, D: Kernels<E>>(dev: &D, steps: usize) -> (Vec<E>, Vec<E>, Vec<E>) {
    let mut net = NestedSeq2Seq::<E, D>::init(dev, &mut rng(21)).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut opt = Adam::new(1e-2);
    let batch = 2;
    let f = |n: usize, s: usize| -> Vec<E> {
        (0..n)
            .map(|i| E::of(((i * 7 + s) % 11) as f64 / 5.0 - 1.0))
            .collect()
    };
    let src = Tensor::<S2<5, 8>, E, D>::from_slice(dev, &f(batch * 40, 1)).unwrap();
    let tgt = Tensor::<S2<4, 8>, E, D>::from_slice(dev, &f(batch * 32, 4)).unwrap();
    let y = Tensor::<S2<4, 3>, E, D>::from_slice(dev, &f(batch * 12, 2)).unwrap();
    let mut d = Tensor::empty(dev).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let out = net.forward_train(&src, &tgt, &mut tape).unwrap();
        losses.push(kiln::loss::mse(out, &y, Some(&mut d)).unwrap());
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    let mut g = grads.dec2.cross.in_proj_weight.to_vec().unwrap();
    g.extend(grads.enc.weight.to_vec().unwrap());
    let out = net.forward(&src, &tgt).unwrap().to_vec().unwrap();
    (losses, g, out)
}

/// Networks of two inputs nested in another (the memory's gradient summed
/// over both decoder blocks and carried into the encoder): two Adam steps on
/// the CUDA emulation match the CPU.
#[test]
fn nested_two_input_blocks_train_like_on_the_cpu() {
    let dev = device();
    let (lc, gc, oc) = train_nested::<f64, Cpu>(&Cpu, 2);
    let (lg, gg, og) = train_nested::<f64, Cuda>(&dev, 2);
    common::check("loss per step", &lg, &lc, 1e-10);
    common::check(
        "dec2.cross.in_proj_weight and enc.weight gradients",
        &gg,
        &gc,
        1e-10,
    );
    common::check("outputs after the Adam steps", &og, &oc, 1e-10);
    assert!(lg[1] < lg[0], "training does not reduce the loss");
}

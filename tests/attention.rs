//! `MultiHeadAttention` in `network!`: causal self-attention in a chain,
//! and an encoder–decoder graph with cross-attention (`memory = enc`) and
//! key-padding masks from the source's pad ids (`key_padding = src == 0`).
//! Every parameter gradient of each generated network is checked against
//! central differences in f64, the padding is checked to hide the padded
//! source positions exactly, and a tiny model trains.

use kiln::prelude::*;
use kiln::testing::{numeric_grad, numeric_grad_small, random_input, rel_err2};
use kiln::Path;

kiln::network! {
    /// Causal self-attention over embedded characters, chain form.
    pub struct TinyGpt {
        input: Tokens<[6], 9>,
        emb: Embedding(9, 8),
        attn: MultiHeadAttention(8, heads = 2, causal = true),
        head: Linear(9),
    }
}

kiln::network! {
    /// Encoder self-attention and decoder cross-attention, both masked by
    /// the source's padding (id 0); the decoder's self-attention is causal.
    pub struct TinySeq2Seq {
        input src: Tokens<[5], 7>,
        input tgt: Tokens<[4], 7>,
        let e = src |> semb: Embedding(7, 8);
        let enc = e |> enc_attn: MultiHeadAttention(8, heads = 2, key_padding = src == 0);
        let mem = enc + e;
        let d = tgt |> temb: Embedding(7, 8);
        let dec = d |> dec_attn: MultiHeadAttention(8, heads = 4, causal = true);
        let x = dec |> cross: MultiHeadAttention(8, heads = 2, memory = mem, key_padding = src == 0);
        output logits = x + dec |> head: Linear(7);
    }
}

/// Checks every parameter's gradient of `Σ y⊙r` against central differences,
/// through the `Module` visitors; returns the largest relative error.
fn check_all<N: Module<f64, Cpu>>(
    net: &mut N,
    grads: &N::Grads,
    mut loss: impl FnMut(&N) -> f64,
) -> f64 {
    let mut analytic = Vec::new();
    net.visit_grads(grads, &Path::ROOT, &mut |p, g| {
        analytic.push((p.to_string(), g.grad.unwrap().clone()));
    });
    let mut worst = 0.0f64;
    for (pi, (name, a)) in analytic.iter().enumerate() {
        let mut value = Vec::new();
        net.visit_grads(grads, &Path::ROOT, &mut |_, p| value.push(p.value.clone()));
        let p0 = value[pi].clone();
        let mut f = |v: &[f64]| {
            let mut i = 0;
            net.visit_grads(grads, &Path::ROOT, &mut |_, p| {
                if i == pi {
                    p.value.copy_from_slice(v);
                }
                i += 1;
            });
            loss(net)
        };
        let (n1, n2) = (numeric_grad(&p0, &mut f), numeric_grad_small(&p0, &mut f));
        f(&p0);
        let e = rel_err2(a, &n1, &n2);
        println!("{name}: {e:e}");
        worst = worst.max(e);
    }
    worst
}

#[test]
fn gpt_gradients_match_central_differences() {
    let mut net = TinyGpt::<f64>::init(&Cpu, &mut rng(1)).unwrap();
    let ids = Tokens::<S1<6>, 9>::new::<f64>(&Cpu, &[1, 2, 3, 4, 5, 6, 8, 7, 0, 1, 2, 3]).unwrap();
    let r = random_input(2 * 6 * 9, &mut rng(2));
    let dr = Tensor::<S2<6, 9>, f64>::from_slice(&Cpu, &r).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    net.forward_train(&ids, &mut tape).unwrap();
    net.backward(&mut tape, &dr, &mut grads).unwrap();
    let loss = |n: &TinyGpt<f64>| -> f64 {
        let y = n.forward(&ids).unwrap().to_vec().unwrap();
        y.iter().zip(&r).map(|(a, b)| a * b).sum()
    };
    let e = check_all(&mut net, &grads, loss);
    assert!(e < 1e-6, "largest relative error {e:e}");
    assert_eq!(TinyGpt::PARAMS, 9 * 8 + 4 * 64 + 4 * 8 + 8 * 9 + 9);
}

fn seq2seq_batch() -> (Tokens<S1<5>, 7>, Tokens<S1<4>, 7>) {
    // Sample 0 is padded after 3 source tokens, sample 1 not at all.
    let src = Tokens::new::<f64>(&Cpu, &[3, 1, 4, 0, 0, 2, 6, 5, 3, 5]).unwrap();
    let tgt = Tokens::new::<f64>(&Cpu, &[1, 2, 3, 4, 6, 5, 4, 3]).unwrap();
    (src, tgt)
}

#[test]
fn seq2seq_gradients_match_central_differences() {
    let mut net = TinySeq2Seq::<f64>::init(&Cpu, &mut rng(3)).unwrap();
    let (src, tgt) = seq2seq_batch();
    let r = random_input(2 * 4 * 7, &mut rng(4));
    let dr = Tensor::<S2<4, 7>, f64>::from_slice(&Cpu, &r).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    net.forward_train(&src, &tgt, &mut tape).unwrap();
    net.backward(&mut tape, &dr, &mut grads).unwrap();
    let loss = |n: &TinySeq2Seq<f64>| -> f64 {
        let y = n.forward(&src, &tgt).unwrap().to_vec().unwrap();
        y.iter().zip(&r).map(|(a, b)| a * b).sum()
    };
    let e = check_all(&mut net, &grads, loss);
    assert!(e < 1e-6, "largest relative error {e:e}");
}

/// Changing a padded source token changes nothing, and padded positions'
/// embedding rows get no gradient through the attention.
#[test]
fn padded_source_positions_are_invisible() {
    let net = TinySeq2Seq::<f64>::init(&Cpu, &mut rng(5)).unwrap();
    let (src, tgt) = seq2seq_batch();
    let y0 = net.forward(&src, &tgt).unwrap().to_vec().unwrap();
    // Sample 0's padding positions hold id 0 either way; change a real token
    // of sample 1 instead and sample 0's outputs must not move.
    let src2 = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &[3, 1, 4, 0, 0, 2, 6, 1, 3, 5]).unwrap();
    let y1 = net.forward(&src2, &tgt).unwrap().to_vec().unwrap();
    assert_eq!(y0[..28], y1[..28]);
    assert_ne!(y0[28..], y1[28..]);
}

#[test]
fn gpt_trains() {
    let mut net = TinyGpt::<f32>::init(&Cpu, &mut rng(6)).unwrap();
    let text: Vec<u32> = (0..70).map(|i| (i * 5 % 9) as u32).collect();
    let text = &text;
    let (xs, ys): (Vec<u32>, Vec<u32>) = (0..10)
        .flat_map(|b| (0..6).map(move |t| (text[b * 6 + t], text[b * 6 + t + 1])))
        .unzip();
    let x = Tokens::<S1<6>, 9>::new::<f32>(&Cpu, &xs).unwrap();
    let y = Tokens::<S1<6>, 9>::new::<f32>(&Cpu, &ys).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut d = Tensor::<S2<6, 9>>::empty(&Cpu).unwrap();
    let mut opt = Adam::<f32, Cpu>::new(0.02);
    let mut losses = Vec::new();
    for _ in 0..60 {
        let logits = net.forward_train(&x, &mut tape).unwrap();
        losses.push(cross_entropy_tokens(logits, &y, None, Some(&mut d)).unwrap());
        net.backward(&mut tape, &d, &mut grads).unwrap();
        opt.step(&mut net, &grads).unwrap();
    }
    println!("loss {} → {}", losses[0], losses[59]);
    assert!(losses[59] < 0.25 * losses[0], "{losses:?}");
}

kiln::network! {
    /// A pre-norm transformer block: LayerNorm → causal attention →
    /// residual, LayerNorm → MLP with GELU → residual.
    pub struct Block {
        input x: [8, 16],
        let a = x |> ln1: LayerNorm |> attn: MultiHeadAttention(16, heads = 2, causal = true);
        let h = a + x;
        let m = h |> ln2: LayerNorm |> fc: Linear(64) |> gelu |> proj: Linear(16);
        output y = m + h;
    }
}

kiln::network! {
    /// A decoder-only character model: token and learned position
    /// embeddings, two blocks, a final LayerNorm, next-character logits.
    pub struct TinyLm {
        input ids: Tokens<[8], 27>,
        let e = ids |> tok: Embedding(27, 16) |> pos: PositionalEmbedding(8);
        let h = e |> b1: Block -> [8, 16] |> b2: Block -> [8, 16] |> lnf: LayerNorm;
        output logits = h |> head: Linear(27);
    }
}

kiln::network! {
    /// Fixed sinusoidal positions instead, chain form.
    pub struct SinLm {
        input: Tokens<[8], 27>,
        tok: Embedding(27, 16),
        pos: SinusoidalPositions,
        b1: Block -> [8, 16],
        head: Linear(27),
    }
}

const TEXT: &str = "it was the best of times it was the worst of times it was the age of \
wisdom it was the age of foolishness it was the epoch of belief it was the epoch of \
incredulity it was the season of light it was the season of darkness it was the spring \
of hope it was the winter of despair we had everything before us we had nothing before us";

/// Windows of 8 characters and the 8 that follow each (`a`…`z` are 0…25,
/// space 26).
fn windows() -> (Vec<u32>, Vec<u32>) {
    let ids: Vec<u32> = TEXT
        .chars()
        .map(|c| if c == ' ' { 26 } else { c as u32 - 'a' as u32 })
        .collect();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for b in 0..(ids.len() - 1) / 8 {
        xs.extend_from_slice(&ids[b * 8..b * 8 + 8]);
        ys.extend_from_slice(&ids[b * 8 + 1..b * 8 + 9]);
    }
    (xs, ys)
}

#[test]
fn transformer_lm_gradients_match_central_differences() {
    let mut net = TinyLm::<f64>::init(&Cpu, &mut rng(10)).unwrap();
    let (xs, _) = windows();
    let ids = Tokens::<S1<8>, 27>::new::<f64>(&Cpu, &xs[..16]).unwrap();
    let r = random_input(2 * 8 * 27, &mut rng(11));
    let dr = Tensor::<S2<8, 27>, f64>::from_slice(&Cpu, &r).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    net.forward_train(&ids, &mut tape).unwrap();
    net.backward(&mut tape, &dr, &mut grads).unwrap();
    let loss = |n: &TinyLm<f64>| -> f64 {
        let y = n.forward(&ids).unwrap().to_vec().unwrap();
        y.iter().zip(&r).map(|(a, b)| a * b).sum()
    };
    let e = check_all(&mut net, &grads, loss);
    assert!(e < 1e-6, "largest relative error {e:e}");
    let mut names = Vec::new();
    net.visit(&Path::ROOT, &mut |p, _| names.push(p.to_string()));
    assert!(
        names.contains(&"b1.attn.in_proj_weight".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"pos.weight".to_string()), "{names:?}");
}

/// The character model on the text above (296 characters, 36 windows):
/// 60 Adam steps on the whole batch bring the loss from about ln 27 to
/// well under half of it; the sinusoidal variant learns too.
#[test]
fn transformer_lm_loss_falls() {
    let (xs, ys) = windows();
    let x = Tokens::<S1<8>, 27>::new::<f32>(&Cpu, &xs).unwrap();
    let y = Tokens::<S1<8>, 27>::new::<f32>(&Cpu, &ys).unwrap();
    let mut d = Tensor::<S2<8, 27>>::empty(&Cpu).unwrap();
    macro_rules! train {
        ($net:ident) => {{
            let mut net = $net::<f32>::init(&Cpu, &mut rng(12)).unwrap();
            let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
            let mut opt = Adam::<f32, Cpu>::new(3e-3);
            let mut losses = Vec::new();
            for _ in 0..60 {
                let logits = net.forward_train(&x, &mut tape).unwrap();
                losses.push(cross_entropy_tokens(logits, &y, None, Some(&mut d)).unwrap());
                net.backward(&mut tape, &d, &mut grads).unwrap();
                opt.step(&mut net, &grads).unwrap();
            }
            losses
        }};
    }
    for (name, l) in [("learned", train!(TinyLm)), ("sinusoidal", train!(SinLm))] {
        println!("{name} positions: loss {:.4} → {:.4}", l[0], l[59]);
        assert!(l[59] < 0.5 * l[0], "{name}: {l:?}");
    }
}

kiln::network! {
    /// The README's translator (encoder, decoder, cross-attention).
    pub struct Translator {
        input src: Tokens<[12], 40>,
        input tgt: Tokens<[10], 40>,
        let e = src |> semb: Embedding(40, 64) |> spos: PositionalEmbedding(12);
        let a = e |> sln: LayerNorm |> enc_attn: MultiHeadAttention(64, heads = 4, key_padding = src == 0);
        let enc = a + e;
        let d = tgt |> temb: Embedding(40, 64) |> tpos: PositionalEmbedding(10);
        let s = d |> dln: LayerNorm |> dec_attn: MultiHeadAttention(64, heads = 4, causal = true);
        let h = s + d;
        let c = h |> cln: LayerNorm |> cross: MultiHeadAttention(64, heads = 4, memory = enc, key_padding = src == 0);
        output logits = c + h |> head: Linear(40);                // [10, 40]
    }
}

/// The README's example compiles, runs a training step, and its summary
/// counts the attention parameters.
#[test]
fn readme_translator_runs() {
    let mut net = Translator::<f32>::init(&Cpu, &mut rng(13)).unwrap();
    let src: Vec<u32> = (0..24)
        .map(|i| if i % 12 > 8 { 0 } else { 1 + i % 39 })
        .collect();
    let tgt: Vec<u32> = (0..20).map(|i| 1 + (i * 7) % 39).collect();
    let s = Tokens::<S1<12>, 40>::new::<f32>(&Cpu, &src).unwrap();
    let t = Tokens::<S1<10>, 40>::new::<f32>(&Cpu, &tgt).unwrap();
    let (mut tape, mut grads) = (net.tape().unwrap(), net.grads().unwrap());
    let mut d = Tensor::<S2<10, 40>>::empty(&Cpu).unwrap();
    let logits = net.forward_train(&s, &t, &mut tape).unwrap();
    let loss = cross_entropy_tokens(logits, &t, Some(0), Some(&mut d)).unwrap();
    assert!(loss.is_finite());
    net.backward(&mut tape, &d, &mut grads).unwrap();
    let attn = 4 * 64 * 64 + 4 * 64;
    let want = 2 * 40 * 64 + (12 + 10) * 64 + 3 * 2 * 64 + 3 * attn + 64 * 40 + 40;
    assert_eq!(Translator::PARAMS, want);
    println!("{}", Translator::summary());
}

kiln::network! {
    /// A generic context length: one set of weights for every `T ≤ 16`.
    pub struct GenLm<const T: usize> {
        input ids: Tokens<[T], 27>,
        let e = ids |> tok: Embedding(27, 16) |> pos: PositionalEmbedding(16);
        let a = e |> attn: MultiHeadAttention(16, heads = 4, causal = true);
        output logits = a + e |> head: Linear(27);
    }
}

/// The same weights at two context lengths: with causal attention, the
/// first 4 positions' logits do not depend on the 4 after them.
#[test]
fn generic_context_length() {
    let long = GenLm::<f64, Cpu, 8>::init(&Cpu, &mut rng(14)).unwrap();
    let mut short = GenLm::<f64, Cpu, 4>::init(&Cpu, &mut rng(0)).unwrap();
    let mut vals = Vec::new();
    long.visit(&Path::ROOT, &mut |_, p| {
        vals.push(p.value[..p.numel].to_vec())
    });
    let mut i = 0;
    short.visit_mut(&Path::ROOT, &mut |_, p, _| {
        p.value[..p.numel].copy_from_slice(&vals[i]);
        i += 1;
    });
    let ids: Vec<u32> = (0..8).map(|i| (i * 5 % 27) as u32).collect();
    let y8 = long
        .forward(&Tokens::new::<f64>(&Cpu, &ids).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    let y4 = short
        .forward(&Tokens::new::<f64>(&Cpu, &ids[..4]).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    for (a, b) in y4.iter().zip(&y8[..4 * 27]) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
}

kiln::network! {
    /// nanoGPT's attention initialisation through the layer's options.
    pub struct GptInit {
        input x: [8, 64],
        output y = x |> attn: MultiHeadAttention(64, heads = 4, causal = true, init = normal(0.02), out_init = normal(0.005));
    }
}

kiln::network! {
    /// The defaults: PyTorch's Xavier-uniform `in_proj_weight`.
    pub struct DefaultInit {
        input x: [8, 64],
        output y = x |> attn: MultiHeadAttention(64, heads = 4);
    }
}

fn std_of(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn attention_weights_are_drawn_as_the_init_options_say() {
    let net = GptInit::<f32, Cpu>::init(&Cpu, &mut rng(5)).unwrap();
    let w_in = net.attn.in_proj_weight.to_vec().unwrap();
    let w_out = net.attn.out_proj.weight.to_vec().unwrap();
    assert_eq!((w_in.len(), w_out.len()), (3 * 64 * 64, 64 * 64));
    // 12,288 and 4,096 draws: the sample std is within 3% of the target.
    let (s_in, s_out) = (std_of(&w_in), std_of(&w_out));
    assert!((s_in / 0.02 - 1.0).abs() < 0.03, "in_proj std {s_in}");
    assert!((s_out / 0.005 - 1.0).abs() < 0.03, "out_proj std {s_out}");
    // Default: Xavier uniform on [192, 64], bound √(6 / (64 + 192)), std bound/√3.
    let d = DefaultInit::<f32, Cpu>::init(&Cpu, &mut rng(5)).unwrap();
    let w = d.attn.in_proj_weight.to_vec().unwrap();
    let bound = (6.0f64 / 256.0).sqrt();
    assert!(w.iter().all(|&x| (x as f64).abs() <= bound));
    assert!(
        (std_of(&w) / (bound / 3f64.sqrt()) - 1.0).abs() < 0.03,
        "{}",
        std_of(&w)
    );
}

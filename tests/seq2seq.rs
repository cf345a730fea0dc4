//! The encoder–decoder transformer pattern of `examples/translate.rs`, at a
//! size small enough for central differences in f64: pre-norm encoder blocks
//! (`x + MHA(LN(x))`, `x + MLP(LN(x))`, key padding from the source) and
//! decoder blocks (`x + causal MHA(LN(x))`, `x + CrossMHA(LN(x), memory)`,
//! `x + MLP(LN(x))`), two of each, written out in two `network!` graphs: the
//! encoder (source ids → memory) and the decoder (source ids for the padding
//! mask, memory, target ids → logits, and the last block's normalised
//! queries, from which a caller recomputes the cross-attention weights).
//!
//! Every parameter gradient of both networks, the memory's gradient flowing
//! from the decoder into the encoder included, is checked against central
//! differences; padded source positions are checked to be invisible to the
//! decoder; and the pair learns to copy a sequence.

use kiln::layers::{AttentionCache, KeyPadding};
use kiln::prelude::*;
use kiln::testing::{numeric_grad, numeric_grad_small, random_input, rel_err2};
use kiln::{ParamMut, ParamRef, Path, Role};

kiln::network! {
    /// Two pre-norm encoder blocks over embedded source ids, then a LayerNorm.
    pub struct TinyEncoder {
        input src: Tokens<[5], 7>,
        let x0 = src |> emb: Embedding(7, 8) |> pos: PositionalEmbedding(5);
        let a1 = x0 |> e1_ln1: LayerNorm |> e1_attn: MultiHeadAttention(8, heads = 2, key_padding = src == 0);
        let h1 = a1 + x0;
        let m1 = h1 |> e1_ln2: LayerNorm |> e1_fc: Linear(16) |> gelu |> e1_proj: Linear(8);
        let x1 = m1 + h1;
        let a2 = x1 |> e2_ln1: LayerNorm |> e2_attn: MultiHeadAttention(8, heads = 2, key_padding = src == 0);
        let h2 = a2 + x1;
        let m2 = h2 |> e2_ln2: LayerNorm |> e2_fc: Linear(16) |> gelu |> e2_proj: Linear(8);
        let x2 = m2 + h2;
        output memory = x2 |> ln: LayerNorm;
    }
}

kiln::network! {
    /// Two pre-norm decoder blocks (causal self-attention, cross-attention
    /// to the memory, MLP), a LayerNorm and the logits.
    pub struct TinyDecoder {
        input src: Tokens<[5], 7>,
        input memory: [5, 8],
        input tgt: Tokens<[4], 7>,
        let y0 = tgt |> emb: Embedding(7, 8) |> pos: PositionalEmbedding(4);
        let s1 = y0 |> d1_ln1: LayerNorm |> d1_self: MultiHeadAttention(8, heads = 2, causal = true);
        let g1 = s1 + y0;
        let c1 = g1 |> d1_ln2: LayerNorm |> d1_cross: MultiHeadAttention(8, heads = 2, memory = memory, key_padding = src == 0);
        let h1 = c1 + g1;
        let m1 = h1 |> d1_ln3: LayerNorm |> d1_fc: Linear(16) |> gelu |> d1_proj: Linear(8);
        let y1 = m1 + h1;
        let s2 = y1 |> d2_ln1: LayerNorm |> d2_self: MultiHeadAttention(8, heads = 2, causal = true);
        let g2 = s2 + y1;
        let q2 = g2 |> d2_ln2: LayerNorm;
        let c2 = q2 |> d2_cross: MultiHeadAttention(8, heads = 2, memory = memory, key_padding = src == 0);
        let h2 = c2 + g2;
        let m2 = h2 |> d2_ln3: LayerNorm |> d2_fc: Linear(16) |> gelu |> d2_proj: Linear(8);
        let y2 = m2 + h2;
        output logits = y2 |> ln: LayerNorm |> head: Linear(7);
        output queries = q2;
    }
}

/// The encoder and the decoder as one [`Module`] (parameters under
/// `encoder.` and `decoder.`), so one optimizer and one gradient check see both.
struct Pair {
    enc: TinyEncoder<f64>,
    dec: TinyDecoder<f64>,
}

struct PairGrads {
    enc: TinyEncoderGrads<f64, Cpu>,
    dec: TinyDecoderGrads<f64, Cpu>,
}

impl Module<f64, Cpu> for Pair {
    type Grads = PairGrads;
    fn grads(&self) -> kiln::Result<PairGrads> {
        Ok(PairGrads {
            enc: self.enc.grads()?,
            dec: self.dec.grads()?,
        })
    }
    fn visit(&self, path: &Path<'_>, f: &mut dyn FnMut(&Path<'_>, ParamRef<'_, f64, Cpu>)) {
        self.enc.visit(&path.child("encoder"), f);
        self.dec.visit(&path.child("decoder"), f);
    }
    fn visit_grads(
        &mut self,
        g: &PairGrads,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>),
    ) {
        self.enc.visit_grads(&g.enc, &path.child("encoder"), f);
        self.dec.visit_grads(&g.dec, &path.child("decoder"), f);
    }
    fn visit_mut(
        &mut self,
        path: &Path<'_>,
        f: &mut dyn FnMut(&Path<'_>, ParamMut<'_, f64, Cpu>, Role),
    ) {
        self.enc.visit_mut(&path.child("encoder"), f);
        self.dec.visit_mut(&path.child("decoder"), f);
    }
}

impl Pair {
    fn new(seed: u64) -> Pair {
        let mut r = rng(seed);
        Pair {
            enc: TinyEncoder::init(&Cpu, &mut r).unwrap(),
            dec: TinyDecoder::init(&Cpu, &mut r).unwrap(),
        }
    }
    fn logits(&self, src: &Tokens<S1<5>, 7>, tgt: &Tokens<S1<4>, 7>) -> Vec<f64> {
        let mem = self.enc.forward(src).unwrap();
        let (logits, _) = self.dec.forward(src, &mem, tgt).unwrap();
        logits.to_vec().unwrap()
    }
}

fn batch() -> (Tokens<S1<5>, 7>, Tokens<S1<4>, 7>) {
    // Sample 0 is padded after 3 source tokens, sample 1 not at all.
    let src = Tokens::new::<f64>(&Cpu, &[3, 1, 4, 0, 0, 2, 6, 5, 3, 5]).unwrap();
    let tgt = Tokens::new::<f64>(&Cpu, &[1, 2, 3, 4, 6, 5, 4, 3]).unwrap();
    (src, tgt)
}

/// One training-mode pass of the pair: decoder backward with input
/// gradients on, its `∂L/∂memory` into the encoder's backward.
fn backward_pair(pair: &mut Pair, dr: &Tensor<S2<4, 7>, f64>) -> PairGrads {
    let (src, tgt) = batch();
    let mut g = pair.grads().unwrap();
    let mut et = pair.enc.tape().unwrap();
    let mut dt = pair.dec.tape().unwrap();
    dt.input_grads = true;
    let mem = pair.enc.forward_train(&src, &mut et).unwrap();
    pair.dec.forward_train(&src, mem, &tgt, &mut dt).unwrap();
    let dq = Tensor::<S2<4, 8>, f64>::zeros(&Cpu, 2).unwrap();
    pair.dec.backward(&mut dt, dr, &dq, &mut g.dec).unwrap();
    pair.enc
        .backward(&mut et, &dt.grad_memory, &mut g.enc)
        .unwrap();
    g
}

#[test]
fn encoder_decoder_gradients_match_central_differences() {
    let mut pair = Pair::new(1);
    let (src, tgt) = batch();
    let r = random_input(2 * 4 * 7, &mut rng(2));
    let dr = Tensor::<S2<4, 7>, f64>::from_slice(&Cpu, &r).unwrap();
    let grads = backward_pair(&mut pair, &dr);
    let loss = |p: &Pair| -> f64 {
        let y = p.logits(&src, &tgt);
        y.iter().zip(&r).map(|(a, b)| a * b).sum()
    };
    let mut analytic = Vec::new();
    pair.visit_grads(&grads, &Path::ROOT, &mut |p, g| {
        analytic.push((p.to_string(), g.grad.unwrap().clone()));
    });
    // 2 embeddings, 2 position tables, 5 + 7 LayerNorms (2 tensors each),
    // 6 attentions (4 each), 4 MLPs (4 each), the head (2).
    assert_eq!(analytic.len(), 2 + 2 + 24 + 24 + 16 + 2);
    let mut worst = 0.0f64;
    for (pi, (name, a)) in analytic.iter().enumerate() {
        let mut value = Vec::new();
        pair.visit_grads(&grads, &Path::ROOT, &mut |_, p| value.push(p.value.clone()));
        let p0 = value[pi].clone();
        let mut f = |v: &[f64]| {
            let mut i = 0;
            pair.visit_grads(&grads, &Path::ROOT, &mut |_, p| {
                if i == pi {
                    p.value.copy_from_slice(v);
                }
                i += 1;
            });
            loss(&pair)
        };
        let (n1, n2) = (numeric_grad(&p0, &mut f), numeric_grad_small(&p0, &mut f));
        f(&p0);
        let e = rel_err2(a, &n1, &n2);
        println!("{name}: {e:e}");
        assert!(
            a.iter().any(|x| x.abs() > 1e-8),
            "{name} has an all-zero gradient"
        );
        worst = worst.max(e);
    }
    assert!(worst < 1e-6, "largest relative error {worst:e}");
}

/// Changing sample 1's source changes nothing of sample 0's logits; the
/// padding of sample 0 hides its positions 3 and 4 from the decoder's
/// cross-attention (exactly zero weight, recomputed from the decoder's
/// `queries` output with the layer's own `cross_attend`).
#[test]
fn padded_source_positions_are_invisible() {
    let pair = Pair::new(3);
    let (src, tgt) = batch();
    let y0 = pair.logits(&src, &tgt);
    let src2 = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &[3, 1, 4, 0, 0, 2, 6, 1, 3, 5]).unwrap();
    let y1 = pair.logits(&src2, &tgt);
    assert_eq!(y0[..28], y1[..28]);
    assert_ne!(y0[28..], y1[28..]);

    let mem = pair.enc.forward(&src).unwrap();
    let (logits, q) = pair.dec.forward(&src, &mem, &tgt).unwrap();
    assert_eq!(logits.to_vec().unwrap(), y0);
    let mut cache = AttentionCache::new(&Cpu).unwrap();
    let mut c = Tensor::<S2<4, 8>, f64>::zeros(&Cpu, 2).unwrap();
    pair.dec
        .d2_cross
        .cross_attend(&q, &mem, Some(KeyPadding::new(&src, 0)), &mut c, &mut cache)
        .unwrap();
    let w = pair.dec.d2_cross.attention_weights(&cache).unwrap();
    assert_eq!(w.len(), 2 * 2 * 4 * 5); // [batch, heads, queries, keys]
    for row in w.chunks_exact(5).take(8) {
        assert_eq!(row[3..], [0.0, 0.0], "{row:?}");
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    for row in w.chunks_exact(5).skip(8) {
        assert!(row.iter().all(|&p| p > 0.0), "{row:?}");
    }
}

/// The pair learns to copy a sequence (teacher forcing: the decoder reads
/// `BOS = 1` and the target shifted by one): 80 Adam steps on 16 samples
/// take the per-token cross-entropy from about ln 7 to under a tenth of it.
#[test]
fn encoder_decoder_learns_to_copy() {
    let mut pair = Pair::new(4);
    let mut r = rng(5);
    let (mut s, mut t, mut y) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..16 {
        let seq: Vec<u32> = (0..4)
            .map(|_| rand::Rng::random_range(&mut r, 2..7))
            .collect();
        s.extend(&seq);
        s.push(0);
        t.push(1);
        t.extend(&seq[..3]);
        y.extend(&seq);
    }
    let src = Tokens::<S1<5>, 7>::new::<f64>(&Cpu, &s).unwrap();
    let tgt = Tokens::<S1<4>, 7>::new::<f64>(&Cpu, &t).unwrap();
    let ys = Tokens::<S1<4>, 7>::new::<f64>(&Cpu, &y).unwrap();
    let mut g = pair.grads().unwrap();
    let mut et = pair.enc.tape().unwrap();
    let mut dt = pair.dec.tape().unwrap();
    dt.input_grads = true;
    let mut dl = Tensor::<S2<4, 7>, f64>::zeros(&Cpu, 16).unwrap();
    let dq = Tensor::<S2<4, 8>, f64>::zeros(&Cpu, 16).unwrap();
    let mut opt = Adam::<f64, Cpu>::new(0.01);
    let mut losses = Vec::new();
    for _ in 0..80 {
        let mem = pair.enc.forward_train(&src, &mut et).unwrap();
        let (logits, _) = pair.dec.forward_train(&src, mem, &tgt, &mut dt).unwrap();
        losses.push(cross_entropy_tokens(logits, &ys, None, Some(&mut dl)).unwrap());
        pair.dec.backward(&mut dt, &dl, &dq, &mut g.dec).unwrap();
        pair.enc
            .backward(&mut et, &dt.grad_memory, &mut g.enc)
            .unwrap();
        opt.step(&mut pair, &g).unwrap();
    }
    println!("loss {:.4} → {:.4}", losses[0], losses[79]);
    assert!((losses[0] - 7f64.ln()).abs() < 0.5, "{losses:?}");
    assert!(losses[79] < 0.1 * losses[0], "{losses:?}");
}

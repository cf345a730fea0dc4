//! `char_gpt`'s sampler through key/value caches: [`GptDecoder`] runs one
//! new position of [`CharGpt`] per call, each block's attention reading the
//! earlier positions' keys and values from its [`KvCache`]; [`sample`]
//! draws text with it.

use super::char_lm::{self, TopK};
use super::{CharGpt, N_EMBD, SEQ, VOCAB};
use kiln::data::text::CharTokenizer;
use kiln::kernels::Kernels;
use kiln::layers::{KvCache, LayerNormCache};
use kiln::prelude::*;
use kiln::Act;

/// Decoding through key/value caches: [`CharGpt`]'s forward pass for one
/// new position per sample, each block's attention reading the keys and
/// values of the earlier positions from its [`KvCache`] instead of
/// recomputing the whole window (the row-wise entry points of
/// [`kiln::layers::KvCache`]'s module doc strung together as the network
/// does). Generic over the element type so that `tests/kv_cache.rs` checks
/// it in f64 against the whole-window forward pass.
pub struct GptDecoder<E: Elem, D: Kernels<E>> {
    caches: Vec<KvCache<E, D>>,
    ln: LayerNormCache<E, D>,
    ids: Tokens<S1<1>, VOCAB, D>,
    /// The residual stream.
    x: Tensor<S1<N_EMBD>, E, D>,
    normed: Tensor<S1<N_EMBD>, E, D>,
    branch: Tensor<S1<N_EMBD>, E, D>,
    hidden: Tensor<S1<{ 4 * N_EMBD }>, E, D>,
    act: Tensor<S1<{ 4 * N_EMBD }>, E, D>,
    logits: Tensor<S1<VOCAB>, E, D>,
}

impl<E: Elem, D: Kernels<E>> GptDecoder<E, D> {
    /// Empty caches for decoding `batch` sequences side by side.
    pub fn new(net: &CharGpt<E, D>, batch: usize) -> kiln::Result<Self> {
        let dev = net.wte.weight.device();
        let blocks = [&net.h0, &net.h1, &net.h2, &net.h3];
        Ok(GptDecoder {
            caches: blocks
                .iter()
                .map(|b| b.attn.kv_cache(batch))
                .collect::<kiln::Result<_>>()?,
            ln: net.ln_f.cache()?,
            ids: Tokens::zeros::<E>(dev, batch)?,
            x: Tensor::zeros(dev, batch)?,
            normed: Tensor::zeros(dev, batch)?,
            branch: Tensor::zeros(dev, batch)?,
            hidden: Tensor::zeros(dev, batch)?,
            act: Tensor::zeros(dev, batch)?,
            logits: Tensor::zeros(dev, batch)?,
        })
    }

    /// Positions decoded so far (at most [`SEQ`]).
    pub fn len(&self) -> usize {
        self.caches[0].len()
    }

    /// Whether nothing has been decoded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every position (to refill a cropped context).
    pub fn clear(&mut self) {
        self.caches.iter_mut().for_each(KvCache::clear);
    }

    /// Runs `ids` (one per sample) at the next position and returns the
    /// logits predicting the character after it, `[batch, VOCAB]`. An error
    /// once [`SEQ`] positions are decoded ([`GptDecoder::clear`] and refill).
    pub fn step(
        &mut self,
        net: &CharGpt<E, D>,
        ids: &[u32],
    ) -> kiln::Result<&Tensor<S1<VOCAB>, E, D>> {
        let pos = self.len();
        let dev = net.wte.weight.device();
        self.ids.set::<E>(ids)?;
        net.wte.lookup_rows(&self.ids, &mut self.x)?;
        net.wpe.add_position(pos, &mut self.x)?;
        let n = self.x.numel();
        let blocks = [&net.h0, &net.h1, &net.h2, &net.h3];
        for (blk, cache) in blocks.into_iter().zip(&mut self.caches) {
            // x = x + attn(ln_1(x))
            blk.ln_1
                .forward_rows(&self.x, &mut self.normed, &mut self.ln)?;
            blk.attn
                .attend_step(&self.normed, cache, &mut self.branch)?;
            dev.axpy(E::one(), self.branch.buf(), self.x.buf_mut(), n, Acc::Add)?;
            // x = x + c_proj(gelu(c_fc(ln_2(x))))
            blk.ln_2
                .forward_rows(&self.x, &mut self.normed, &mut self.ln)?;
            blk.c_fc.forward_rows(&self.normed, &mut self.hidden)?;
            let m = self.hidden.numel();
            self.act.set_batch(self.hidden.batch())?;
            dev.act_fwd(Act::Gelu, self.hidden.buf(), self.act.buf_mut(), m)?;
            blk.c_proj.forward_rows(&self.act, &mut self.branch)?;
            dev.axpy(E::one(), self.branch.buf(), self.x.buf_mut(), n, Acc::Add)?;
        }
        net.ln_f
            .forward_rows(&self.x, &mut self.normed, &mut self.ln)?;
        net.lm_head
            .forward_rows(&net.wte.weight, &self.normed, &mut self.logits)?;
        Ok(&self.logits)
    }
}

/// Characters the cache keeps when the context outgrows [`SEQ`].
pub const REFILL: usize = SEQ / 2;

/// Samples `n` characters after `prompt` through the key/value caches of
/// [`GptDecoder`]: the prompt (its last `SEQ` characters) runs through them
/// once, then each new character costs one position. When the context
/// outgrows the `SEQ` learned positions the caches are refilled with the
/// last [`REFILL`] characters (their keys and values change with their
/// positions), so a character costs two positions on average and sees
/// between `REFILL` and `SEQ` characters of context; nanoGPT's `generate`
/// (and [`super::sample_uncached`]) crops to the last `SEQ` and re-runs all of them
/// for every character. Up to the first refill both draw the same text from
/// the same generator.
pub fn sample<D: Kernels<f32>>(
    net: &CharGpt<f32, D>,
    tok: &CharTokenizer,
    prompt: &str,
    n: usize,
    temperature: f64,
    top_k: usize,
    rng: &mut Rng,
) -> kiln::Result<String> {
    char_lm::check_temperature(temperature)?;
    let mut ctx = tok.encode(if prompt.is_empty() { "\n" } else { prompt })?;
    let mut dec = GptDecoder::new(net, 1)?;
    let mut row = vec![0.0f32; VOCAB];
    let mut pick = TopK::new(VOCAB);
    for &id in &ctx[ctx.len().saturating_sub(SEQ)..] {
        dec.step(net, &[id])?;
    }
    for i in 0..n {
        dec.logits.copy_to_slice(&mut row)?;
        let next = pick.pick(&row, temperature, top_k, rng) as u32;
        ctx.push(next);
        if i + 1 == n {
            break;
        }
        if dec.len() == SEQ {
            dec.clear();
            for &id in &ctx[ctx.len() - REFILL..] {
                dec.step(net, &[id])?;
            }
        } else {
            dec.step(net, &[next])?;
        }
    }
    tok.decode(&ctx)
}

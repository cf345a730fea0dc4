//! Sampling from `mnist_gan`'s generator: digits in evaluation mode, and a
//! copy with standing batch-norm statistics (for the averaged G).

use super::{Generator, Z};
use kiln::optim::Ema;
use kiln::prelude::*;

/// A copy of `g` whose batch norms hold **standing statistics**: the
/// running mean and variance recomputed for these weights, as the
/// cumulative mean of the batch statistics of training-mode passes over
/// `z` in batches of 500 (momentum `1/k` at the k-th batch). The averaged
/// running statistics of an EMA are averages of statistics of *other*
/// (earlier) weights; these are the statistics of the averaged weights.
pub fn with_standing_stats(
    g: &Generator<f32, Cpu>,
    z: &[f32],
) -> kiln::Result<Generator<f32, Cpu>> {
    let mut s = Generator::<f32, Cpu>::init(&Cpu, &mut rng(0))?;
    // An average of decay 0 is a copy (parameters and buffers).
    Ema::<f32, Cpu>::new(0.0)?.update(&mut s, g)?;
    let mut tape = s.tape()?;
    let mut zt = Tensor::<S1<Z>>::zeros(&Cpu, 1)?;
    for (k, chunk) in z.chunks(500 * Z).enumerate() {
        let m = 1.0 / (k + 1) as f64;
        (s.bn0.momentum, s.bn1.momentum) = (m, m);
        zt.set_batch(chunk.len() / Z)?;
        zt.copy_from_slice(chunk)?;
        s.forward_train(&zt, &mut tape)?;
    }
    Ok(s)
}

/// `n` digits from G in evaluation mode, pixels in `[0, 1]`, noise from `z`
/// (`n × Z` values).
pub fn generate(g: &Generator<f32, Cpu>, z: &[f32]) -> kiln::Result<Vec<f32>> {
    let mut tape = g.tape()?;
    let mut zt = Tensor::<S1<Z>>::zeros(&Cpu, 1)?;
    let mut out = Vec::with_capacity(z.len() / Z * 784);
    for chunk in z.chunks(500 * Z) {
        zt.set_batch(chunk.len() / Z)?;
        zt.copy_from_slice(chunk)?;
        let y = g.forward_with(&zt, &mut tape)?.to_vec()?;
        out.extend(y.iter().map(|v| 0.5 * (v + 1.0)));
    }
    Ok(out)
}

// Per-position cross-entropy of logits over 10 classes against token ids over a vocabulary of 9.
use kiln::prelude::*;

fn main() -> kiln::Result<()> {
    let logits = Tensor::<S2<4, 10>>::zeros(&Cpu, 2)?;
    let targets = Tokens::<S1<4>, 9>::new::<f32>(&Cpu, &[0; 8])?;
    let _ = cross_entropy_tokens(&logits, &targets, None, None)?;
    Ok(())
}

// Token ids over a vocabulary of 64 given to an embedding table of 65 rows.
use kiln::layers::{Embedding, EmbeddingConfig};
use kiln::prelude::*;

fn main() -> kiln::Result<()> {
    let table = Embedding::<f32, Cpu, 65, 8>::build(&Cpu, &mut rng(0), EmbeddingConfig::default())?;
    let ids = Tokens::<S1<4>, 64>::new::<f32>(&Cpu, &[1, 2, 3, 4])?;
    let mut y = Tensor::<S2<4, 8>>::empty(&Cpu)?;
    table.forward(&ids, &mut y, &mut ())?;
    Ok(())
}

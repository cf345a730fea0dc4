//! A user's `main` that returns `kiln::Result` and fails: a batch of 3
//! labels for 2 rows of logits. `tests/errors_from_main.rs` runs it and reads
//! what a user would see on stderr.

use deep::prelude::*;

fn main() -> deep::Result<()> {
    let logits = Tensor::<S1<4>>::from_slice(&Cpu, &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])?;
    let labels = Labels::<4>::new::<f32>(&Cpu, &[1, 2, 3])?;
    let loss = cross_entropy(&logits, &labels, None)?;
    println!("loss {loss}");
    Ok(())
}

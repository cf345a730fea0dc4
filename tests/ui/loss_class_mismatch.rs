// Logits for 10 classes scored against labels of 5 classes.
use kiln::prelude::*;

fn main() -> kiln::Result<()> {
    let logits = Tensor::<S1<10>>::zeros(&Cpu, 2)?;
    let labels = Labels::<5>::new::<f32>(&Cpu, &[1, 3])?;
    let _loss = cross_entropy(&logits, &labels, None)?;
    Ok(())
}

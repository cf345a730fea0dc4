// An image (a conv layer's output, not class scores) fed to cross_entropy.
use kiln::prelude::*;

fn main() -> kiln::Result<()> {
    let features = Tensor::<S3<6, 28, 28>>::zeros(&Cpu, 2)?;
    let labels = Labels::<10>::new::<f32>(&Cpu, &[1, 3])?;
    let _loss = cross_entropy(&features, &labels, None)?;
    Ok(())
}

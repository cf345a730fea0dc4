// `forward` called with a tensor whose per-sample shape is not the network's input.
use kiln::prelude::*;

kiln::network! {
    pub struct Mlp {
        input: [784],
        fc1: Linear(128),
        relu,
        fc2: Linear(10),
    }
}

fn main() -> kiln::Result<()> {
    let net = Mlp::<f32, Cpu>::init(&Cpu, &mut rng(0))?;
    let x = Tensor::<S1<400>>::zeros(&Cpu, 8)?;
    let _logits = net.forward(&x)?;
    Ok(())
}

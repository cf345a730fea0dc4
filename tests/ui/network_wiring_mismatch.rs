// Network A's output ([10]) wired, in user code, into network B whose input
// is [20]; A and B come from separate invocations.
use kiln::prelude::*;

kiln::network! {
    pub struct A {
        input: [784],
        fc: Linear(10),
    }
}

kiln::network! {
    pub struct B {
        input: [20],
        fc: Linear(2),
    }
}

fn main() -> kiln::Result<()> {
    let a = A::<f32, Cpu>::init(&Cpu, &mut rng(0))?;
    let b = B::<f32, Cpu>::init(&Cpu, &mut rng(1))?;
    let x = Tensor::<S1<784>>::zeros(&Cpu, 4)?;
    let _y = b.forward(&a.forward(&x)?)?;
    Ok(())
}

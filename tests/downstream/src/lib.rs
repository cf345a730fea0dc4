//! A user's crate. It depends on kiln under another name (`deep`, see
//! `Cargo.toml`) and never names `kiln` itself, so the networks below compile
//! only if every path that `network!` generates resolves through the name the
//! user gave the dependency. Its tests train the networks and check their
//! gradients, so that hygiene is proven on every CI run.

deep::network! {
    /// A chain: two hidden layers for 3-class points in the plane lifted to
    /// 4 features.
    pub struct Classifier {
        input: [4],
        fc1: Linear(16),
        relu,
        fc2: Linear(16),
        tanh,
        fc3: Linear(3),
    }
}

deep::network! {
    /// A graph: a residual block (`h + x`) followed by a head.
    pub struct Residual {
        input x: [4],
        let h = x |> Linear(4) |> tanh |> Linear(4);
        let r = h + x;
        output logits = r |> tanh |> head: Linear(3);
    }
}

deep::network! {
    /// A network from another invocation used as a layer.
    pub struct Stacked {
        input: [4],
        block: Residual -> [3],
        tanh,
        out: Linear(3),
    }
}

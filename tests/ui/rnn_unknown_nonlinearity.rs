// nn.RNN's nonlinearity is 'tanh' or 'relu'; anything else is refused where
// it is written.
kiln::network! {
    pub struct Net {
        input: [10, 16],
        rnn: RNN(32, nonlinearity = "sigmoid"),
    }
}

fn main() {}

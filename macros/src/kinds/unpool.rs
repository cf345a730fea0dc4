//! `MaxUnpool2d(pool)`: puts each value back at the position the
//! `MaxPool2d` named `pool` took it from (zeros elsewhere). It has no cache
//! of its own: it reads the pool's (the argmax positions) in both passes,
//! which is why the pool must be applied exactly once, before it.

use super::image::chw;
use super::{Call, Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::parse::Spec;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["MaxUnpool2d"],
    parse,
};

struct MaxUnpool2d {
    /// The field name of the paired `MaxPool2d`.
    pool: Ident,
}

fn parse(spec: &Spec, _k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    match (args.positional.as_slice(), args.named.is_empty()) {
        ([syn::Expr::Path(p)], true) if p.path.get_ident().is_some() => {
            Some(Box::new(MaxUnpool2d {
                pool: p.path.get_ident().cloned()?,
            }))
        }
        _ => {
            diag.error(spec.span, "`MaxUnpool2d` names the `MaxPool2d` whose positions it restores: `MaxUnpool2d(pool1)`");
            None
        }
    }
}

impl Rule for MaxUnpool2d {
    fn is_field(&self) -> bool {
        true
    }

    /// Rule: `pool` names a `MaxPool2d` applied once, earlier in the graph;
    /// the unpooling's input has that pooling's output shape and its output
    /// the pooling's input shape.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let (who, pool, net) = (s.who, &self.pool, s.net);
        let Some(pl) = net.layers.iter().find(|l| l.field == *pool) else {
            return Err(format!("`{who}`: there is no layer named `{pool}`; name the `MaxPool2d` whose positions it restores (`{pool}: MaxPool2d(2)`)"));
        };
        if pl.spec.ident() != "MaxPool2d" {
            return Err(format!(
                "`{who}`: `{pool}` is a `{}`, not a `MaxPool2d`",
                pl.spec.text()
            ));
        }
        match pl.uses.as_slice() {
            [p] if *p < s.node => {}
            [_] => {
                return Err(format!(
                    "`{who}` must come after `{pool}`, whose positions it restores"
                ))
            }
            _ => {
                return Err(format!(
                    "`{who}`: `{pool}` is applied {} times; unpooling needs exactly one application",
                    pl.uses.len()
                ))
            }
        }
        if pl.out_shape != s.input {
            return Err(format!(
                "`{who}` restores the positions of `{pool}`, which gives {}, but `{}` gives {}",
                dims(&pl.out_shape),
                s.from,
                dims(s.input)
            ));
        }
        Ok(pl.in_shape.clone())
    }

    fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream {
        let ((c, h, w), (_, oh, ow)) = (chw(input), chw(out));
        quote!(#k::layers::MaxUnpool2d<#c, #h, #w, #oh, #ow>)
    }

    /// Not a `Layer` (it reads another layer's cache): its FLOPS are an
    /// inherent constant.
    fn flops(&self, _k: &TokenStream, ty: &TokenStream) -> TokenStream {
        quote!(<#ty>::FLOPS)
    }

    fn has_cache(&self) -> bool {
        false
    }

    fn bounds(&self, c: &Call) -> TokenStream {
        let k = c.k;
        quote!(#k::Module<E, D>)
    }

    /// Its methods (not a `Layer`'s) use the pooling kernels.
    fn device_bounds(&self, k: &TokenStream) -> Vec<TokenStream> {
        vec![quote!(D: #k::PoolKernels<E>)]
    }

    /// `self.unpool.forward(x, &c.pool1_cache, &mut y)`.
    fn forward(&self, c: &Call, _train: bool) -> TokenStream {
        let Call { field, x, y, .. } = c;
        let cp = c.cache_of(&self.pool);
        quote!(self.#field.forward(#x, &#cp, &mut #y)?;)
    }

    /// Not a `Layer`, so not bounded by `InputGrad`: `backward_from` makes
    /// the same call as `backward` (which computes the input gradient alone).
    fn input_grad_bound(&self) -> bool {
        false
    }

    /// `if let Some((dx, acc)) = dx { self.unpool.backward(&c.pool1_cache, dy, dx, acc)?; }`.
    fn backward_input(&self, c: &Call) -> TokenStream {
        self.backward(c)
    }

    /// `self.unpool.onnx_with_pool(g, "unpool", x, "pool1")`: ONNX's
    /// `MaxUnpool` reads the indices the pool's export left in the graph.
    fn onnx(&self, c: &Call) -> TokenStream {
        let Call { k, field, x, y, .. } = c;
        let (name, pool) = (field.to_string(), self.pool.to_string());
        quote! {
            let at_l = #k::onnx::join(at, #name);
            let #y = #k::onnx::one(&at_l, self.#field.onnx_with_pool(g, &at_l, #x, &#k::onnx::join(at, #pool))?)?;
        }
    }

    /// `self.unpool.backward(&c.pool1_cache, dy, dx, acc)`, when the input
    /// wants a gradient.
    fn backward(&self, c: &Call) -> TokenStream {
        let Call {
            field, dy, dx, ..
        } = c;
        let cp = c.cache_of(&self.pool);
        quote!(if let ::core::option::Option::Some((dx, acc)) = #dx { self.#field.backward(&#cp, #dy, dx, acc)?; })
    }
}

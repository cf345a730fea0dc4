//! `Linear(out)` or `Linear(in, out)` (PyTorch's argument order), options
//! `bias = true`, `init = torch_default`, `tied = LAYER`: a dense layer on
//! the last dimension, applied at every position of the others as PyTorch's
//! `nn.Linear` (`[T, in]` → `[T, out]`, one GEMM over `B·T` rows).
//!
//! `tied = wte` (weight tying, nanoGPT's `lm_head.weight = wte.weight`): the
//! layer has no weight of its own and borrows the table of the `Embedding`
//! field `wte`, whose `[V, D]` is this layer's `[out, in]`; it becomes a
//! `kiln::layers::TiedLinear` called through inherent methods that take the
//! owner's weight and its gradient (see `Rule::tied_to`).

use super::args::{boolean, init, size};
use super::{Entry, Rule, ShapeIn};
use crate::diag::{dims, numel_expl, Diag};
use crate::dim;
use crate::parse::Spec;
use super::Call;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

pub const KIND: Entry = Entry {
    names: &["Linear"],
    parse,
};

struct Linear {
    /// The declared input width, checked against the inferred one.
    inp: Option<usize>,
    out: usize,
    bias: bool,
    init: TokenStream,
    /// `tied = wte`: the field whose weight this layer uses.
    tied: Option<Ident>,
}

fn parse(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    let (inp, out) = match args.positional.as_slice() {
        [o] => (None, size(o, "`Linear`'s output size", diag)?),
        [i, o] => {
            let i = size(i, "`Linear`'s input size", diag);
            let o = size(o, "`Linear`'s output size", diag);
            (Some(i?), o?)
        }
        _ => {
            diag.error_range(
                spec.range(),
                "`Linear` takes its number of output features, `Linear(256)`, or input and output features, `Linear(784, 256)`",
            );
            return None;
        }
    };
    let mut bias = true;
    let mut ini = quote!(#k::Init::TorchDefault);
    let mut tied = None;
    for (n, e) in &args.named {
        match n.to_string().as_str() {
            "bias" => bias = boolean(e, "`bias`", diag)?,
            "init" => ini = init(e, k, diag)?,
            "tied" => match e {
                syn::Expr::Path(p) if p.path.get_ident().is_some() => {
                    tied = p.path.get_ident().cloned();
                }
                _ => {
                    diag.error(
                        syn::spanned::Spanned::span(e),
                        "`tied` names the layer whose weight this one uses, `tied = wte`",
                    );
                    return None;
                }
            },
            other => {
                diag.error(
                    n.span(),
                    format!("`Linear` has no option `{other}` (options: `bias`, `init`, `tied`)"),
                );
                return None;
            }
        }
    }
    Some(Box::new(Linear {
        inp,
        out,
        bias,
        init: ini,
        tied,
    }))
}

impl Rule for Linear {
    fn is_field(&self) -> bool {
        true
    }

    /// Rule: the last dimension of the input has the declared width if one
    /// is written; the output replaces it by `out`.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let ShapeIn {
            who,
            input,
            from,
            origin,
            ..
        } = *s;
        if self.out == 0 || self.inp == Some(0) {
            return Err(format!(
                "`{who}` has a zero-sized dimension; every dimension must be at least 1"
            ));
        }
        let last = input[input.len() - 1];
        if let Some(i) = self.inp {
            if !dim::same(i, last) {
                let got = if input.len() == 1 {
                    numel_expl(origin)
                } else {
                    format!("shape {}, whose last dimension is {}", dims(input), dim::text(last))
                };
                return Err(format!(
                    "`{who}` expects {} input features but `{from}` gives {got}",
                    dim::text(i)
                ));
            }
        }
        let mut out = input.to_vec();
        match out.last_mut() {
            Some(last) => *last = self.out,
            None => return Err(format!("`{who}` needs an input with at least one dimension")),
        }
        if let Some(t) = &self.tied {
            self.check_tie(t, s, last)?;
        }
        Ok(out)
    }

    fn ty(&self, k: &TokenStream, input: &[usize], _out: &[usize]) -> TokenStream {
        let (lead, last) = input.split_at(input.len() - 1);
        let (i, o) = (dim::tokens(last[0]), dim::tokens(self.out));
        let t = if self.tied.is_some() {
            quote!(TiedLinear)
        } else {
            quote!(Linear)
        };
        if lead.is_empty() {
            quote!(#k::layers::#t<E, D, #i, #o>)
        } else {
            let l = super::shape_ty(k, lead);
            quote!(#k::layers::#t<E, D, #i, #o, #l>)
        }
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let (bias, init) = (self.bias, &self.init);
        quote!(#k::layers::LinearConfig { bias: #bias, init: #init })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::LinearConfig)
    }

    /// `in × out` weights and `out` biases (only the biases when tied: the
    /// weight is counted once, with its owner).
    fn params(&self, input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        if self.tied.is_some() {
            let b = if self.bias { self.out } else { 0 };
            return if dim::is_known(b) {
                quote!(#b)
            } else {
                let o = dim::tokens(b);
                quote!(#o)
            };
        }
        let i = input[input.len() - 1];
        if dim::is_known(i) && dim::is_known(self.out) {
            let n = i * self.out + if self.bias { self.out } else { 0 };
            return quote!(#n);
        }
        let (i, o) = (dim::tokens(i), dim::tokens(self.out));
        if self.bias {
            quote!((#i * #o + #o))
        } else {
            quote!((#i * #o))
        }
    }

    fn symbolic(&self) -> bool {
        true
    }

    fn tied_to(&self) -> Option<&Ident> {
        self.tied.as_ref()
    }

    fn has_cache(&self) -> bool {
        self.tied.is_none()
    }

    /// A tied layer's backward call is its own (see `Rule::input_grad`).
    fn input_grad(&self) -> bool {
        self.tied.is_none()
    }

    fn fuses_act(&self) -> bool {
        self.tied.is_none()
    }

    /// `Linear::forward_act`: the bias and the activation as the product's
    /// epilogue (not for a tied layer, whose weight is another's).
    fn fused_forward(&self, c: &Call, act: &TokenStream, act_y: &TokenStream) -> Option<TokenStream> {
        if self.tied.is_some() {
            return None;
        }
        let Call { ty, x, y, .. } = c;
        let f = c.field;
        Some(quote!(<#ty>::forward_act(&self.#f, #act, #x, &mut #y, &mut #act_y)?;))
    }

    /// `Linear::backward_act`: the activation's backward, the bias gradient
    /// with it, then the layer's products.
    fn fused_backward(
        &self,
        c: &Call,
        act: &TokenStream,
        act_y: &TokenStream,
        dpre: &TokenStream,
    ) -> Option<TokenStream> {
        if self.tied.is_some() {
            return None;
        }
        let Call {
            ty,
            x,
            y,
            dy,
            dx,
            grads,
            gacc,
            ..
        } = c;
        let f = c.field;
        Some(quote!(<#ty>::backward_act(&self.#f, #act, #x, &#y, &#act_y, #dy, &mut #dpre, #dx, #grads, #gacc)?;))
    }

    fn flops(&self, k: &TokenStream, ty: &TokenStream) -> TokenStream {
        if self.tied.is_some() {
            quote!(<#ty>::FLOPS)
        } else {
            quote!(<#ty as #k::Layer<E, D>>::FLOPS)
        }
    }

    /// A tied layer is called through `TiedLinear`'s inherent methods.
    fn bounds(&self, c: &Call) -> TokenStream {
        let Call { k, si, so, .. } = c;
        if self.tied.is_some() {
            let o = dim::tokens(self.out);
            quote!(#k::Module<E, D, Grads = #k::layers::TiedLinearGrads<E, D, #o>>)
        } else {
            quote!(#k::Layer<E, D, In = #si, Out = #so>)
        }
    }

    /// Tied: `self.head.onnx_tied(g, "head", x, "wte.weight",
    /// TiedWeight::tied_weight(&self.wte))`, the owner's weight under its
    /// own name; untied, the type's `Onnx` impl.
    fn onnx(&self, c: &Call) -> TokenStream {
        let Some(t) = &self.tied else {
            return crate::kinds::default_onnx(c);
        };
        let Call { k, field, x, y, .. } = c;
        let name = field.to_string();
        let owner = format!("{t}.weight");
        quote! {
            let at_l = #k::onnx::join(at, #name);
            let #y = #k::onnx::one(&at_l, self.#field.onnx_tied(g, &at_l, #x, &#k::onnx::join(at, #owner), #k::layers::TiedWeight::<E, D>::tied_weight(&self.#t))?)?;
        }
    }

    /// Tied: `TiedLinear::forward(&self.head, TiedWeight::tied_weight(&self.wte), x, &mut y)`.
    fn forward(&self, c: &Call, train: bool) -> TokenStream {
        let Call {
            k,
            inst,
            x,
            y,
            cache,
            field,
            ..
        } = c;
        match &self.tied {
            Some(t) => quote!(#k::layers::TiedLinear::forward(&self.#field, #k::layers::TiedWeight::<E, D>::tied_weight(&self.#t), #x, &mut #y)?;),
            None if train => {
                quote!(#k::Layer::<E, D>::forward_train(#inst, #x, &mut #y, &mut #cache, ctx)?;)
            }
            None => quote!(#k::Layer::<E, D>::forward(#inst, #x, &mut #y, &mut #cache)?;),
        }
    }

    /// Tied: the owner's weight gradient (`TiedWeight::tied_weight_grad(&mut
    /// g.wte)`) is written with `tie_acc`, the bias gradient with `gacc`.
    fn backward(&self, c: &Call) -> TokenStream {
        let Call {
            k,
            inst,
            x,
            y,
            cache,
            dy,
            dx,
            grads,
            gacc,
            field,
            tie_acc,
            net,
            ..
        } = c;
        let Some(t) = &self.tied else {
            return quote!(#k::Layer::<E, D>::backward(#inst, #x, &#y, &mut #cache, #dy, #dx, #grads, #gacc)?;);
        };
        let owner = net
            .layers
            .iter()
            .find(|l| l.field == *t)
            .map_or_else(TokenStream::new, |l| l.ty.clone());
        quote!(#k::layers::TiedLinear::backward(
            &self.#field,
            #k::layers::TiedWeight::<E, D>::tied_weight(&self.#t),
            #x, #dy, #dx, #grads,
            <#owner as #k::layers::TiedWeight<E, D>>::tied_weight_grad(&mut g.#t),
            #tie_acc, #gacc,
        )?;)
    }
}

impl Linear {
    /// Rule: `tied = t` names an earlier or later layer field `t` that lends
    /// a weight (an `Embedding(V, D)`), and that weight's shape `[V, D]` is
    /// this layer's `[out, in]`.
    fn check_tie(&self, t: &Ident, s: &ShapeIn, inp: usize) -> Result<(), String> {
        let who = s.who;
        let Some(owner) = s.net.layers.iter().find(|l| l.field == *t) else {
            return Err(format!(
                "`{who}` is tied to `{t}`, but the network has no layer named `{t}`"
            ));
        };
        let Some(w) = owner.kind.tie_weight() else {
            return Err(format!(
                "`{who}` is tied to `{t}: {}`, which has no weight to lend; `tied` names an `Embedding`",
                owner.spec.text()
            ));
        };
        let mine = [self.out, inp];
        if !(w.len() == 2 && dim::same(w[0], mine[0]) && dim::same(w[1], mine[1])) {
            return Err(format!(
                "`{who}` has a weight of shape {} ([out, in]) but the table of `{t}: {}` it is tied to has shape {}; tied tensors must have the same shape",
                dims(&mine),
                owner.spec.text(),
                dims(&w)
            ));
        }
        Ok(())
    }
}

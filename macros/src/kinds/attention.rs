//! `MultiHeadAttention(DM, heads = H)` on a sequence `[T, DM]`, with options
//! `causal = true`, `bias = false`, `memory = enc` (cross-attention: keys
//! and values from the value `enc`, `[S, DM]`) and `key_padding = ids == PAD`
//! (keys whose id in the token input `ids`, `Tokens<[S], V>`, equals `PAD`
//! are masked), `init = normal(0.02)` (how `in_proj_weight` is drawn;
//! default `xavier_uniform`, PyTorch's) and `out_init = …` (`out_proj.weight`;
//! default `torch_default`). The output has the input's shape. Called through the
//! layer's inherent `self_attend`/`cross_attend` (and their backward), since
//! a cross-attention layer reads two tensors.

use super::args::{boolean, check_names, init, int, named};
use super::{Call, Entry, Rule, ShapeIn};
use crate::diag::{dims, Diag};
use crate::dim;
use crate::parse::Spec;
use proc_macro2::{Ident, TokenStream};
use quote::quote;
use std::cell::Cell;
use syn::spanned::Spanned;

pub const KIND: Entry = Entry {
    names: &["MultiHeadAttention"],
    parse,
};

struct Attention {
    d_model: usize,
    heads: usize,
    causal: bool,
    bias: bool,
    memory: Option<Ident>,
    /// `init = …` and `out_init = …`: the initialisers of the input and
    /// output projections' weights, as `kiln::Init` expressions.
    init: TokenStream,
    out_init: TokenStream,
    /// `ids == PAD`: the token input and the padding id expression.
    pad: Option<(Ident, syn::Expr)>,
    /// The query and key lengths `T` and `S`, set by the shape rule (the
    /// type needs `S`, the memory's length, which only the graph knows).
    lengths: Cell<(usize, usize)>,
}

fn ident_of(e: &syn::Expr) -> Option<Ident> {
    match e {
        syn::Expr::Path(p) => p.path.get_ident().cloned(),
        _ => None,
    }
}

fn parse(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let args = spec.args.clone().unwrap_or_default();
    let names = ["heads", "causal", "bias", "memory", "key_padding", "init", "out_init"];
    if !check_names(spec, &args, &names, diag) {
        return None;
    }
    let usage = "`MultiHeadAttention(d_model, heads = H)`, e.g. `MultiHeadAttention(128, heads = 4)`";
    let (Some(d), [_], Some(h)) = (
        args.positional.first(),
        args.positional.as_slice(),
        named(&args, "heads"),
    ) else {
        diag.error(spec.span, format!("`{}` is written {usage}", spec.text()));
        return None;
    };
    let d_model = int(d, "d_model", diag)?;
    let heads = int(h, "the number of heads", diag)?;
    if heads == 0 || d_model % heads != 0 {
        let near: Vec<String> = (1..=d_model)
            .filter(|k| d_model % k == 0)
            .filter(|k| k * 2 >= heads && *k <= heads * 2)
            .map(|k| k.to_string())
            .collect();
        diag.error(
            h.span(),
            format!(
                "`{}`: d_model {d_model} is not divisible by {heads} heads ({d_model} = {heads}×{} + {}): each head takes d_model / heads features; heads that divide {d_model} near {heads}: {}",
                spec.text(),
                d_model / heads.max(1),
                d_model % heads.max(1),
                near.join(", ")
            ),
        );
        return None;
    }
    let flag = |name: &str, default: bool, diag: &mut Diag| match named(&args, name) {
        Some(e) => boolean(e, &format!("`{name}`"), diag),
        None => Some(default),
    };
    let causal = flag("causal", false, diag)?;
    let bias = flag("bias", true, diag)?;
    let init = match named(&args, "init") {
        Some(e) => init(e, k, diag)?,
        None => quote!(#k::Init::XavierUniform),
    };
    let out_init = match named(&args, "out_init") {
        Some(e) => super::args::init(e, k, diag)?,
        None => quote!(#k::Init::TorchDefault),
    };
    let memory = match named(&args, "memory") {
        None => None,
        Some(e) => match ident_of(e) {
            Some(i) => Some(i),
            None => {
                diag.error(e.span(), "`memory` names the input or binding that gives the keys and values: `memory = enc`");
                return None;
            }
        },
    };
    let pad = match named(&args, "key_padding") {
        None => None,
        Some(syn::Expr::Binary(b)) if matches!(b.op, syn::BinOp::Eq(_)) && ident_of(&b.left).is_some() => {
            Some((ident_of(&b.left)?, (*b.right).clone()))
        }
        Some(e) => {
            diag.error(e.span(), "`key_padding` says which keys are padding, by a token input and the padding id: `key_padding = src == 0`");
            return None;
        }
    };
    Some(Box::new(Attention {
        d_model,
        heads,
        causal,
        bias,
        memory,
        init,
        out_init,
        pad,
        lengths: Cell::new((0, 0)),
    }))
}

impl Attention {
    /// The memory's argument position, if any, and the padding ids'.
    fn memory_arg(&self) -> Option<usize> {
        self.memory.as_ref().map(|_| 1)
    }
    fn pad_arg(&self) -> Option<usize> {
        self.pad.as_ref().map(|_| 1 + self.memory.is_some() as usize)
    }
    fn padding(&self, c: &Call) -> TokenStream {
        let k = c.k;
        match (&self.pad, self.pad_arg()) {
            (Some((_, id)), Some(i)) => {
                let ids = &c.extra[i - 1];
                quote!(::core::option::Option::Some(#k::layers::KeyPadding::new(#ids, (#id) as u32)))
            }
            _ => quote!(::core::option::Option::None),
        }
    }
}

impl Rule for Attention {
    fn is_field(&self) -> bool {
        true
    }

    /// The sequence length may be a generic parameter; the width must be a
    /// number (it is compared with `d_model`).
    fn symbolic(&self) -> bool {
        true
    }

    fn extra_inputs(&self) -> Vec<Ident> {
        let mut v: Vec<Ident> = self.memory.iter().cloned().collect();
        v.extend(self.pad.iter().map(|(i, _)| i.clone()));
        v
    }

    /// Rule: the input is a sequence `[T, d_model]`; a memory is a float
    /// sequence `[S, d_model]` other than the input; padding ids are a token
    /// input with one id per key (`[S]`, or `[T]` for self-attention). The
    /// output is `[T, d_model]`.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String> {
        let (who, input, from, dm) = (s.who, s.input, s.from, self.d_model);
        let [t, w] = *input else {
            return Err(format!("`{who}` needs a sequence [T, {dm}] but `{from}` gives {}", dims(input)));
        };
        if w != dm {
            return Err(format!(
                "`{who}` has d_model {dm} but `{from}` gives {} features per position (shape {}); write `MultiHeadAttention({}, heads = {})` or make the input {dm} wide",
                dim::text(w),
                dims(input),
                dim::text(w),
                self.heads
            ));
        }
        let net = s.net;
        let args = &net.nodes[s.node].args;
        let mut keys = t;
        if let Some(i) = self.memory_arg() {
            let (mv, m) = (args[i], net.val_label(args[i]));
            if mv == args[0] {
                return Err(format!("`{who}` reads `{m}` as both queries and memory; for self-attention leave out `memory`"));
            }
            if net.vocab(mv).is_some() {
                return Err(format!("`{who}`: the memory `{m}` holds token ids; embed them first"));
            }
            let ms = net.shape(mv);
            match *ms {
                [sl, mw] if mw == dm => keys = sl,
                [_, mw] => {
                    return Err(format!(
                        "`{who}` has d_model {dm} but its memory `{m}` gives {} features per position (shape {}); keys and values are projected from {dm}-wide positions",
                        dim::text(mw),
                        dims(ms)
                    ))
                }
                _ => return Err(format!("`{who}`: the memory `{m}` must be a sequence [S, {dm}] but gives {}", dims(ms))),
            }
        }
        if let Some(i) = self.pad_arg() {
            let (pv, p) = (args[i], net.val_label(args[i]));
            if net.vocab(pv).is_none() {
                return Err(format!("`{who}`: `key_padding` reads token ids, but `{p}` gives float values; name an input declared `input {p}: Tokens<[..], V>`"));
            }
            if net.shape(pv) != [keys] {
                return Err(format!(
                    "`{who}` attends over {} keys but the padding ids `{p}` have shape {}; they need one id per key, [{}]",
                    dim::text(keys),
                    dims(net.shape(pv)),
                    dim::text(keys)
                ));
            }
        }
        self.lengths.set((t, keys));
        Ok(input.to_vec())
    }

    fn ty(&self, k: &TokenStream, _input: &[usize], _out: &[usize]) -> TokenStream {
        let (t, s) = self.lengths.get();
        let (t, s) = (dim::tokens(t), dim::tokens(s));
        let (dm, h, qkv) = (self.d_model, self.heads, 3 * self.d_model);
        quote!(#k::layers::MultiHeadAttention<E, D, #t, #s, #dm, #h, #qkv>)
    }

    fn config(&self, k: &TokenStream) -> TokenStream {
        let (bias, causal, init, out_init) = (self.bias, self.causal, &self.init, &self.out_init);
        quote!(#k::layers::MultiHeadAttentionConfig { bias: #bias, causal: #causal, init: #init, out_init: #out_init })
    }

    fn config_ty(&self, k: &TokenStream) -> TokenStream {
        quote!(#k::layers::MultiHeadAttentionConfig)
    }

    fn params(&self, _input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        let d = self.d_model;
        let n = 4 * d * d + if self.bias { 4 * d } else { 0 };
        quote!(#n)
    }

    /// Projections, `Q·Kᵀ`, `P·V`, `out_proj` (the layer's `FLOPS`, here
    /// because cross-attention is not a `Layer`).
    fn flops(&self, _k: &TokenStream, _ty: &TokenStream) -> TokenStream {
        let (t, s) = self.lengths.get();
        let (t, s, d) = (dim::tokens(t), dim::tokens(s), self.d_model);
        quote!((2 * #t * #d * #d + 2 * #s * #d * #d + 2 * #t * #s * #d))
    }

    fn cache_ty(&self, k: &TokenStream, _ty: &TokenStream) -> TokenStream {
        let (t, dm) = (dim::tokens(self.lengths.get().0), self.d_model);
        quote!(#k::layers::AttentionCache<E, D, #t, #dm>)
    }

    fn cache_init(&self, k: &TokenStream, _inst: &TokenStream) -> TokenStream {
        quote!(#k::layers::AttentionCache::new(&self.device)?)
    }

    fn cache_is_layers(&self) -> bool {
        false
    }

    /// `Module` with its gradients named: the inherent methods take them
    /// as `MultiHeadAttentionGrads`.
    fn bounds(&self, c: &Call) -> TokenStream {
        let (k, dm, qkv) = (c.k, self.d_model, 3 * self.d_model);
        quote!(#k::Module<E, D, Grads = #k::layers::MultiHeadAttentionGrads<E, D, #dm, #qkv>>)
    }

    /// Its methods (not a `Layer`'s) use the attention kernels.
    fn device_bounds(&self, k: &TokenStream) -> Vec<TokenStream> {
        vec![quote!(D: #k::layers::AttentionKernels<E>)]
    }

    /// `self.attn.onnx_attend(g, "attn", x, memory, pad)`, the memory's
    /// and the padding ids' value names and the padding id given.
    fn onnx(&self, c: &Call) -> TokenStream {
        let Call { k, field, x, y, extra, .. } = c;
        let name = field.to_string();
        let memory = match self.memory_arg() {
            Some(i) => {
                let m = &extra[i - 1];
                quote!(::core::option::Option::Some(#m))
            }
            None => quote!(::core::option::Option::None),
        };
        let pad = match (&self.pad, self.pad_arg()) {
            (Some((_, id)), Some(i)) => {
                let ids = &extra[i - 1];
                quote!(::core::option::Option::Some((#ids, (#id) as u32)))
            }
            _ => quote!(::core::option::Option::None),
        };
        quote! {
            let at_l = #k::onnx::join(at, #name);
            let #y = #k::onnx::one(&at_l, self.#field.onnx_attend(g, &at_l, #x, #memory, #pad)?)?;
        }
    }

    /// `self.attn.self_attend(x, pad, &mut y, &mut cache)`, or
    /// `cross_attend(x, memory, pad, …)`.
    fn forward(&self, c: &Call, _train: bool) -> TokenStream {
        let Call {
            field, x, y, cache, ..
        } = c;
        let pad = self.padding(c);
        match self.memory_arg() {
            Some(i) => {
                let m = &c.extra[i - 1];
                quote!(self.#field.cross_attend(#x, #m, #pad, &mut #y, &mut #cache)?;)
            }
            None => quote!(self.#field.self_attend(#x, #pad, &mut #y, &mut #cache)?;),
        }
    }

    /// Its backward call is its own: no `backward_from` (see `Rule::input_grad`).
    fn input_grad(&self) -> bool {
        false
    }

    /// `self_attend_backward(x, cache, dy, dx, grads, gacc)`, or
    /// `cross_attend_backward(x, memory, cache, dy, dx, dmemory, grads, gacc)`.
    fn backward(&self, c: &Call) -> TokenStream {
        let Call {
            field,
            x,
            cache,
            dy,
            dx,
            grads,
            gacc,
            ..
        } = c;
        match self.memory_arg() {
            Some(i) => {
                let (m, dm) = (&c.extra[i - 1], &c.extra_dx[i - 1]);
                quote!(self.#field.cross_attend_backward(#x, #m, &mut #cache, #dy, #dx, #dm, #grads, #gacc)?;)
            }
            None => quote!(self.#field.self_attend_backward(#x, &mut #cache, #dy, #dx, #grads, #gacc)?;),
        }
    }
}

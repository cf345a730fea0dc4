//! The built-in layer kinds, one file per kind, and the registry of their
//! names.
//!
//! Everything the macro knows about a kind lives in its file: how it reads
//! its arguments (with their diagnostics), the rule that gives its output
//! shape (with its diagnostics), its Rust type, its config and constructor,
//! its parameter count, and, where the default does not fit, how it is
//! called and what the generated code must know about it. The rest of the
//! macro asks through [`Rule`] and never names a kind.
//!
//! **Adding a kind** means:
//! 1. a new file here, `kinds/my_layer.rs`, with a `pub const KIND: Entry`
//!    (its names and its parser) and a type implementing [`Rule`] (the
//!    trait's defaults fit a one-input, one-output layer of core called
//!    through `kiln::Layer`: only `is_field`, `out_shape` and `ty` are
//!    required);
//! 2. the layer itself in `core/src/layers/` (forward, backward, tests).
//!
//! There is no list to edit: the build script (`macros/build.rs`) finds every
//! file here that declares `pub const KIND: Entry` and registers it.
//!
//! Nothing in `ir.rs`, `shape.rs` or `emit.rs` changes.

use crate::diag::{suggest, Diag};
use crate::ir::Net;
use crate::parse::Spec;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

mod args;
mod image;
mod recurrent;
mod subnet;

// `mod <kind>;` for every file here that declares `pub const KIND: Entry`,
// and `KINDS`, the list of them in file-name order (`macros/build.rs`).
include!(concat!(env!("OUT_DIR"), "/kinds.rs"));

/// A kind in the registry: the names it is written with and its parser.
pub struct Entry {
    /// Every spelling of the kind (`relu`, `Relu`).
    pub names: &'static [&'static str],
    /// Reads the arguments of a layer written with one of `names`; `None`
    /// once the mistakes are reported to the collector.
    pub parse: fn(&Spec, &TokenStream, &mut Diag) -> Option<Box<dyn Rule>>,
}

/// What shape inference tells a kind about the layer's first application.
pub struct ShapeIn<'a> {
    /// How messages name the layer (`fc1: Linear(256)`).
    pub who: &'a str,
    /// The input's per-sample shape.
    pub input: &'a [usize],
    /// How messages name the value feeding the layer.
    pub from: &'a str,
    /// The dimensions the input's features come from (`[16, 5, 5]` after
    /// `flatten`), so that a message reads `400 = 16×5×5`.
    pub origin: &'a [usize],
    /// The input's vocabulary when it holds token ids (`Tokens<[T], V>`);
    /// only kinds whose [`Rule::reads_tokens`] is true see one.
    pub vocab: Option<usize>,
    /// The whole graph and the node being inferred (for kinds that refer to
    /// another layer, such as `MaxUnpool2d(pool)`).
    pub net: &'a Net,
    pub node: usize,
}

/// What code generation tells a kind about one application of its layer.
/// Every piece is a ready expression of the generated function it goes into
/// (`c` is the network's cache, `self` the network).
pub struct Call<'a> {
    /// The path of the `kiln` facade.
    pub k: &'a TokenStream,
    /// The layer's Rust type, and its input and output shape types.
    pub ty: &'a TokenStream,
    pub si: TokenStream,
    pub so: TokenStream,
    /// The same shapes as numbers.
    pub input: &'a [usize],
    pub out: &'a [usize],
    /// The field holding the layer (or the in-place layer's generated name).
    pub field: &'a Ident,
    /// `&self.fc1`, `&mut self.fc1` (training forward), or an in-place
    /// stateless layer `&<Relu<S1<256>> as Default>::default()`.
    pub inst: TokenStream,
    /// The input, a `&Tensor` expression (`in_x`, `&c.conv1_out`).
    pub x: TokenStream,
    /// The values named by [`Rule::extra_inputs`], in that order, each a
    /// reference expression (`&c.enc_out`, `in_src` for token ids).
    pub extra: Vec<TokenStream>,
    /// The output tensor, a place (`c.fc1_out`).
    pub y: TokenStream,
    /// The layer's cache, a place (`c.fc1_cache`), for kinds with one.
    pub cache: TokenStream,
    /// Backward only: the gradient arriving at the output (`&c.fc1_grad`),
    /// where the input's gradient goes (an `Option<(&mut Tensor, Acc)>`), the
    /// parameter gradients and how to accumulate them.
    pub dy: TokenStream,
    pub dx: TokenStream,
    /// Backward only: where each extra input's gradient goes, as `dx`
    /// (`None` for token ids).
    pub extra_dx: Vec<TokenStream>,
    pub grads: TokenStream,
    pub gacc: TokenStream,
    /// Backward only, for a layer tied to another's weight
    /// ([`Rule::tied_to`]): how to accumulate into the owner's weight
    /// gradient (`gacc` at the first contribution in the backward order,
    /// `Acc::Add` at the second).
    pub tie_acc: TokenStream,
    /// The graph, and each node's cache field (for kinds that read another
    /// layer's cache: see [`Call::cache_of`]).
    pub net: &'a Net,
    pub cache_fields: &'a [Option<Ident>],
}

impl Call<'_> {
    /// The cache place (`c.pool1_cache`) of the first application of the
    /// layer named `field`.
    pub fn cache_of(&self, field: &Ident) -> Option<TokenStream> {
        let l = self.net.layers.iter().find(|l| l.field == *field)?;
        let f = self.cache_fields.get(*l.uses.first()?)?.as_ref()?;
        Some(quote!(c.#f))
    }
}

/// Everything kind-specific that the later stages ask of a layer. The
/// defaults describe a layer of core called through `kiln::Layer`.
pub trait Rule {
    /// Whether the layer is a field of the network (it owns parameters,
    /// buffers, a window geometry or a nested network), built once by
    /// `init`; otherwise it is built in place where it is called.
    fn is_field(&self) -> bool;

    /// The output shape of the first application, or a message saying why
    /// the input does not fit.
    fn out_shape(&self, s: &ShapeIn) -> Result<Vec<usize>, String>;

    /// The layer's Rust type for input shape `input` and output shape `out`.
    fn ty(&self, k: &TokenStream, input: &[usize], out: &[usize]) -> TokenStream;

    /// The configuration passed to `Build::build` (fields only), and its type.
    fn config(&self, _k: &TokenStream) -> TokenStream {
        quote!(())
    }
    fn config_ty(&self, _k: &TokenStream) -> TokenStream {
        quote!(())
    }

    /// An expression building the layer in place (in-place layers only).
    fn inline(&self, ty: &TokenStream) -> TokenStream {
        quote!(<#ty as ::core::default::Default>::default())
    }

    /// Trainable parameters, as a constant expression.
    fn params(&self, _input: &[usize], _out: &[usize], _ty: &TokenStream) -> TokenStream {
        quote!(0usize)
    }

    /// Multiply–adds per sample, as a constant expression.
    fn flops(&self, k: &TokenStream, ty: &TokenStream) -> TokenStream {
        quote!(<#ty as #k::Layer<E, D>>::FLOPS)
    }

    /// How the layer got its output size from its input, when that needs
    /// saying in a message about the value it makes (a strided window that
    /// rounds down, a transposed convolution one pixel short); `None` when
    /// the size is unremarkable.
    fn explain_out(&self, _input: &[usize], _out: &[usize]) -> Option<String> {
        None
    }

    /// Whether the rule accepts an input with dimensions the macro cannot
    /// see (named constants, generic parameters: `dim.rs`); kinds that
    /// compute output sizes from numbers refuse them (the default).
    fn symbolic(&self) -> bool {
        false
    }

    /// Whether the layer reads token ids (`Embedding`) rather than floats:
    /// shape inference feeds it `Tokens` inputs only, and every other kind
    /// float values only.
    fn reads_tokens(&self) -> bool {
        false
    }

    /// Whether a value this layer makes explains its feature count by the
    /// layer's input shape in messages (`flatten`: `400 = 16×5×5`).
    fn explains_features(&self) -> bool {
        false
    }

    /// Whether each application keeps a cache of its own in the network's
    /// cache struct (`<T as Layer>::Cache`).
    fn has_cache(&self) -> bool {
        true
    }

    /// The trait the generated passes use on the layer's type, as a bound
    /// (the emitter adds `Build` for fields and `Module<Grads = ()>` for
    /// in-place layers; see `emit::layer_bounds`). Associated types the
    /// generated code relies on must be named: under a `where` clause rustc
    /// no longer looks them up in the layer's impl.
    fn bounds(&self, c: &Call) -> TokenStream {
        let Call { k, si, so, .. } = c;
        quote!(#k::Layer<E, D, In = #si, Out = #so>)
    }

    /// Predicates the generated calls need besides the traits of the layer's
    /// type: a layer called through inherent methods states the kernel
    /// family those methods ask of the device (`D: PoolKernels<E>`).
    fn device_bounds(&self, _k: &TokenStream) -> Vec<TokenStream> {
        Vec::new()
    }

    /// Whether the layer is an element-wise activation (core's
    /// `layers::Elementwise`) that a preceding dense layer may take into its
    /// product's epilogue (see [`Rule::fused_forward`]).
    fn elementwise(&self) -> bool {
        false
    }

    /// Whether the layer can apply a following element-wise activation as
    /// its product's epilogue ([`Rule::fused_forward`] gives its call).
    fn fuses_act(&self) -> bool {
        false
    }

    /// For a kind that can apply a following element-wise activation as its
    /// product's epilogue (`Linear`): the fused forward call, which writes
    /// the layer's output `c.y` (the pre-activation) and the activation's
    /// output `act_y` (a place) in one pass; `act` is the activation's
    /// instance (a `&` expression). `None`: the kind does not fuse (the
    /// default), and the two layers are called one after the other.
    fn fused_forward(
        &self,
        _c: &Call,
        _act: &TokenStream,
        _act_y: &TokenStream,
    ) -> Option<TokenStream> {
        None
    }

    /// The backward call of a fused pair (when [`Rule::fused_forward`] gives
    /// one): `c.dy` is the gradient arriving at the activation's output,
    /// `dpre` the place that receives the gradient at the layer's own output
    /// (its grad buffer), `c.dx`, `c.grads`, `c.gacc` as in
    /// [`Rule::backward`].
    fn fused_backward(
        &self,
        _c: &Call,
        _act: &TokenStream,
        _act_y: &TokenStream,
        _dpre: &TokenStream,
    ) -> Option<TokenStream> {
        None
    }

    /// The forward call, training mode (`ctx` in scope) or evaluation mode.
    fn forward(&self, c: &Call, train: bool) -> TokenStream {
        default_forward(c, train)
    }

    /// The backward call.
    fn backward(&self, c: &Call) -> TokenStream {
        default_backward(c)
    }

    /// Whether the generated `backward_from` may call the layer as
    /// `InputGrad::backward_input(inst, x, &y, &mut cache, dy, dx, mode)`,
    /// the input-gradient-only form of [`default_backward`], or through its
    /// own [`Rule::backward_input`] (`MaxUnpool2d`). A kind whose backward
    /// call is its own and has no such form (several inputs, a tied weight,
    /// recurrent state) says no, and a network holding it has no
    /// `backward_from`.
    fn input_grad(&self) -> bool {
        true
    }

    /// Whether `backward_from`'s `where` clause bounds the layer's type by
    /// `InputGrad` (no for a kind whose [`Rule::backward_input`] calls
    /// something else).
    fn input_grad_bound(&self) -> bool {
        true
    }

    /// The call `backward_from` makes, with `c.dy` the arriving gradient
    /// (`&c.fc1_grad`) and `c.dx` where the input's goes (an
    /// `Option<(&mut Tensor, Acc)>` expression); `mode` is in scope. By
    /// default `InputGrad::backward_input(inst, x, &y, &mut cache, dy, dx, mode)`.
    fn backward_input(&self, c: &Call) -> TokenStream {
        let Call {
            k,
            inst,
            x,
            y,
            dy,
            dx,
            ..
        } = c;
        let cache = if c.cache.is_empty() {
            quote!(())
        } else {
            c.cache.clone()
        };
        quote!(#k::InputGrad::<E, D>::backward_input(#inst, #x, &#y, &mut #cache, #dy, #dx, mode)?;)
    }

    /// A recurrent layer's per-sample state shape (what `state = s` takes
    /// and `FinalState(rnn)` gives); `None` for other kinds.
    fn recurrent_state(&self) -> Option<Vec<usize>> {
        None
    }

    /// Values the layer reads besides its piped input, by the name of a
    /// graph input or binding (cross-attention's `memory = enc`, its
    /// `key_padding = src == 0`): lowering looks them up and makes them the
    /// node's arguments after the input, in this order, so the graph's
    /// order, name checks and gradient accumulation see them; shape
    /// inference's rule finds their shapes in `s.net.nodes[s.node].args`.
    fn extra_inputs(&self) -> Vec<Ident> {
        Vec::new()
    }

    /// The type of the layer's cache in the network's cache struct, and an
    /// expression creating it (`self` is the network); by default the
    /// `Layer`'s. A kind that overrides them returns `false` from
    /// [`Rule::cache_is_layers`], so the cache struct does not bound the
    /// layer's type by `Layer`.
    fn cache_ty(&self, k: &TokenStream, ty: &TokenStream) -> TokenStream {
        quote!(<#ty as #k::Layer<E, D>>::Cache)
    }
    fn cache_init(&self, k: &TokenStream, inst: &TokenStream) -> TokenStream {
        quote!(#k::Layer::<E, D>::cache(#inst)?)
    }
    fn cache_is_layers(&self) -> bool {
        true
    }
    /// The trait bound the cache struct states on the layer's type for its
    /// cache field: `Layer<E, D>` for a `Layer`'s cache, none for a kind
    /// whose cache type is concrete.
    fn cache_bound(&self, k: &TokenStream) -> Option<TokenStream> {
        self.cache_is_layers().then(|| quote!(#k::Layer<E, D>))
    }

    /// The field whose weight this layer borrows (`tied = wte`), if any:
    /// the emitter then sets [`Call::tie_acc`] so that the owner's weight
    /// gradient sums both uses.
    fn tied_to(&self) -> Option<&Ident> {
        None
    }

    /// The per-sample shape of the weight other layers may borrow
    /// (`Embedding(V, D)`: `[V, D]`); `None` for a kind that lends none.
    fn tie_weight(&self) -> Option<Vec<usize>> {
        None
    }

    /// The ONNX export of one application, in the generated
    /// `Onnx::onnx` (`g`, the graph, and `at`, the network's path, in
    /// scope; [`Call::x`] and [`Call::extra`] are the input values' names as
    /// `&str`, [`Call::y`] the local that receives the output's name): by
    /// default the layer type's own `kiln::onnx::Onnx` impl, under the
    /// layer's path (`block.fc1`).
    fn onnx(&self, c: &Call) -> TokenStream {
        default_onnx(c)
    }

    /// Items emitted next to the network for each application (none by
    /// default).
    fn items(&self, _c: &Call) -> TokenStream {
        TokenStream::new()
    }
}

/// A `Layer`'s forward call, training mode (`ctx` in scope) or evaluation
/// mode: [`Rule::forward`]'s default.
pub fn default_forward(c: &Call, train: bool) -> TokenStream {
    let Call {
        k,
        inst,
        x,
        y,
        cache,
        ..
    } = c;
    if train {
        quote!(#k::Layer::<E, D>::forward_train(#inst, #x, &mut #y, &mut #cache, ctx)?;)
    } else {
        quote!(#k::Layer::<E, D>::forward(#inst, #x, &mut #y, &mut #cache)?;)
    }
}

/// A `Layer`'s backward call: [`Rule::backward`]'s default.
pub fn default_backward(c: &Call) -> TokenStream {
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
        ..
    } = c;
    quote!(#k::Layer::<E, D>::backward(#inst, #x, &#y, &mut #cache, #dy, #dx, #grads, #gacc)?;)
}

/// A layer's ONNX export through its type's `Onnx` impl: [`Rule::onnx`]'s
/// default.
pub fn default_onnx(c: &Call) -> TokenStream {
    let Call {
        k,
        inst,
        x,
        extra,
        y,
        field,
        ..
    } = c;
    let name = syn::ext::IdentExt::unraw(*field).to_string();
    quote! {
        let at_l = #k::onnx::join(at, #name);
        let #y = #k::onnx::one(&at_l, #k::onnx::Onnx::onnx(#inst, g, &at_l, &[#x #(, #extra)*])?)?;
    }
}

/// Turns a written layer into its rule, reporting unknown names and bad
/// arguments.
pub fn resolve(spec: &Spec, k: &TokenStream, diag: &mut Diag) -> Option<Box<dyn Rule>> {
    let name = spec.ident().to_string();
    let Some(entry) = KINDS.iter().find(|e| e.names.contains(&name.as_str())) else {
        if spec.out.is_some() {
            return subnet::parse(spec, diag);
        }
        let all = || KINDS.iter().flat_map(|e| e.names.iter().copied());
        let list = || all().collect::<Vec<_>>().join(", ");
        let hint = match suggest(&name, all()) {
            Some(s) => format!("; did you mean `{s}`?"),
            // Written with arguments, it cannot be a network from another
            // `network!` (those take none): point at the nearest built-in.
            None if spec.args.is_some() => format!(
                "; the closest built-in layer is `{}` (built-in layers are: {})",
                closest(&name, all()),
                list()
            ),
            None if name.starts_with(char::is_uppercase) => format!(
                "; to use a network declared by another `network!`, write its output shape: `{name} -> [..]`"
            ),
            None => format!("; built-in layers are: {}", list()),
        };
        diag.error(spec.ident().span(), format!("unknown layer `{name}`{hint}"));
        return None;
    };
    let rule = (entry.parse)(spec, k, diag)?;
    if spec.out.is_some() {
        diag.error_range(spec.range(), format!("`-> [..]` declares the output of a network from another `network!`; `{name}` is built in and its shape is inferred"));
    }
    Some(rule)
}

/// The candidate nearest to `name` by edit distance, ignoring case (ties:
/// the first in registry order).
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> &'a str {
    let lower = name.to_lowercase();
    candidates
        .min_by_key(|c| crate::diag::distance(&lower, &c.to_lowercase()))
        .unwrap_or("Linear")
}

/// `S1<…>`…`S4<…>` for a shape (a dimension the macro cannot see is a
/// const block, `{ HIDDEN }`).
pub fn shape_ty(k: &TokenStream, d: &[usize]) -> TokenStream {
    let d: Vec<TokenStream> = d.iter().map(|x| crate::dim::tokens(*x)).collect();
    match d.as_slice() {
        [a] => quote!(#k::S1<#a>),
        [a, b] => quote!(#k::S2<#a, #b>),
        [a, b, c] => quote!(#k::S3<#a, #b, #c>),
        [a, b, c, e] => quote!(#k::S4<#a, #b, #c, #e>),
        _ => quote!(()),
    }
}

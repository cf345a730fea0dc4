//! The checked-in expansion: `docs/expansion/lenet.rs` is what `network!`
//! makes of kiln's LeNet-5 (the declaration in `src/lib.rs`,
//! `kiln::models::LeNet5`, read from there), pretty-printed. This test
//! regenerates it and compares byte for byte, so the file always shows what
//! the macro really emits. After a deliberate change to the macro or to
//! LeNet-5, bless the new expansion with
//! `KILN_BLESS=1 cargo test -p kiln-macros expansion` and review its diff.

use std::path::PathBuf;

const HEADER: &str = "\
// The expansion of `kiln::models::LeNet5` (declared in `src/lib.rs`) by the
// `network!` macro, pretty-printed; the crate path `$crate` is written `::kiln`.
// Read it top to bottom: the parameter struct, the gradients, the cache (one
// `*_out`, `*_cache`, `*_grad` per layer), the tape, the inherent impl
// (constants, public API, then the passes), and the `Module`, `Build` and
// `Layer` impls. `macros/src/emit.rs` renders each part in the function
// named in its doc comment.
//
// Generated; do not edit. `cargo test -p kiln-macros expansion` checks that it
// is current; regenerate it with `KILN_BLESS=1 cargo test -p kiln-macros expansion`.

";

/// The tokens of the `network!` invocation declaring LeNet-5 in `src/lib.rs`.
fn lenet_tokens(root: &std::path::Path) -> String {
    let src = std::fs::read_to_string(root.join("src/lib.rs")).expect("read src/lib.rs");
    let models = src
        .find("pub mod models")
        .expect("`pub mod models` in src/lib.rs");
    let open = models
        + src[models..]
            .find("kiln::network! {")
            .expect("a `kiln::network!` in `models`")
        + "kiln::network! ".len();
    let mut depth = 0;
    for (i, ch) in src[open..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return src[open + 1..open + i].to_string();
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces after `kiln::network!` in src/lib.rs")
}

#[test]
fn expansion() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let body = lenet_tokens(&root);
    assert!(body.contains("struct LeNet5"), "found: {body}");
    let input: proc_macro2::TokenStream = format!("::kiln; {body}").parse().expect("tokens");
    let out = crate::expand(input);
    let file: syn::File = syn::parse2(out.clone()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let text = format!("{HEADER}{}", prettyplease::unparse(&file));
    let path = root.join("docs/expansion/lenet.rs");
    if std::env::var_os("KILN_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir docs/expansion");
        std::fs::write(&path, &text).expect("write docs/expansion/lenet.rs");
        return;
    }
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    if old != text {
        let line = old
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .map_or(old.lines().count().min(text.lines().count()), |i| i)
            + 1;
        panic!(
            "docs/expansion/lenet.rs is not what the macro emits (first difference at line {line}); \
             if the change is intended, regenerate it with \
             `KILN_BLESS=1 cargo test -p kiln-macros expansion` and review the diff"
        );
    }
}

/// The fields of the generated cache struct, in order.
fn cache_fields(src: &str) -> Vec<String> {
    let out = crate::expand(src.parse().expect("tokens"));
    let file: syn::File = syn::parse2(out).expect("an expansion");
    file.items
        .iter()
        .find_map(|i| match i {
            syn::Item::Struct(s) if s.ident.to_string().ends_with("Cache") => Some(
                s.fields
                    .iter()
                    .filter_map(|f| f.ident.as_ref().map(|i| i.to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .expect("a cache struct")
}

#[test]
fn cache_fields_are_named_after_the_layers() {
    // A shared layer's uses are numbered, an unnamed addition and in-place
    // layers are counted, a concatenation takes its binding's name; every
    // node has a gradient buffer (an output's is seeded by `backward_from`;
    // `backward` reads d_y directly).
    let fields = cache_fields(
        "::kiln; pub struct Two {
            input a: [5],
            input b: [5],
            layer enc = Linear(4);
            let l = a |> enc |> tanh;
            let r = b |> enc |> tanh;
            let j = concat(l, r);
            output l + r |> out: Linear(2);
            output j;
        }",
    );
    assert_eq!(
        fields,
        [
            "enc_1_out",
            "enc_1_cache",
            "enc_1_grad",
            "tanh1_out",
            "tanh1_cache",
            "tanh1_grad",
            "enc_2_out",
            "enc_2_cache",
            "enc_2_grad",
            "tanh2_out",
            "tanh2_cache",
            "tanh2_grad",
            "j_out",
            "j_grad",
            "add1_out",
            "add1_grad",
            "out_out",
            "out_cache",
            "out_grad",
            "detect",
            "_p",
        ]
    );
}

/// The expansion of `src`, pretty-printed.
fn pretty_expansion(src: &str) -> String {
    let out = crate::expand(src.parse().expect("tokens"));
    prettyplease::unparse(&syn::parse2(out).expect("an expansion"))
}

#[test]
fn linear_then_activation_is_one_fused_call_each_way() {
    // `fc1 → relu` is a fused pair; `fc2`'s value is read by `gelu` and is an
    // output too, so it is not; `enc`, a shared layer, fuses at each use;
    // a `Linear` whose next node is not an activation (`fc3` before `add`)
    // is called on its own.
    let text = pretty_expansion(
        "::kiln; pub struct F {
            input x: [6],
            layer enc = Linear(6);
            let h = x |> fc1: Linear(5) |> relu;
            let p = h |> fc2: Linear(4);
            let e = x |> enc |> tanh |> enc |> tanh;
            let s = e |> fc3: Linear(4);
            output p |> gelu;
            output p;
            output s + p;
        }",
    );
    let count = |needle: &str| text.matches(needle).count();
    // Forward in training and evaluation mode: fc1 and enc's two uses.
    assert_eq!(count(">::forward_act("), 6, "{text}");
    assert_eq!(count(">::backward_act("), 3, "{text}");
    for (layer, fused) in [("fc1", true), ("enc", true), ("fc2", false), ("fc3", false)] {
        let fwd = text.contains(&format!(">::forward_act(\n            &self.{layer},"));
        assert_eq!(fwd, fused, "{layer}: {text}");
    }
}

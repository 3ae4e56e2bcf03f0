//! Our generator of `components/sel4-sys/src/generated.rs`: invocation labels, stubs and
//! constants of seL4 5.0.0 on x86-64, from the kernel's own interface XML and headers, evaluated
//! against the configuration that the kernel in the image is built with.
//!
//! Why a checked-in file instead of a `build.rs`: the host build (`cargo clippy --workspace`,
//! `cargo test`) must work on a clean machine without the kernel source or Python. `cargo xtask
//! image` regenerates the file from the fetched source and the generated autoconf.h on every run
//! and fails when the checked-in copy differs (`--bless` rewrites it), so it can never drift.

mod cheader;
pub mod cond;
mod methods;

use std::fmt::Write;
use std::path::Path;

use cheader::Constant;
use cond::Defines;

/// Where the generated file lives, relative to the repository root.
pub const OUTPUT: &str = "components/sel4-sys/src/generated.rs";

fn read(root: &Path, rel: &str) -> Result<String, String> {
    std::fs::read_to_string(root.join(rel)).map_err(|e| format!("{rel}: {e}"))
}

fn numbered(
    sel4: &Path,
    defs: &Defines,
) -> Result<(Vec<methods::Method>, Vec<methods::Struct>, u64), String> {
    let lib = sel4.join("libsel4");
    let sources = methods::Sources {
        generic: &read(&lib, "include/interfaces/sel4.xml")?,
        sel4_arch: &read(&lib, "sel4_arch_include/x86_64/interfaces/sel4arch.xml")?,
        arch: &read(&lib, "arch_include/x86/interfaces/sel4arch.xml")?,
    };
    methods::number(&sources, defs)
}

/// The invocation labels our generator assigns: (name, number).
pub fn labels(sel4: &Path, autoconf: &str) -> Result<Vec<(String, u64)>, String> {
    let (methods, _, _) = numbered(sel4, &Defines::from_autoconf(autoconf))?;
    Ok(methods.into_iter().map(|m| (m.id, m.label)).collect())
}

/// Generates the bindings from a seL4 source tree and its autoconf.h text.
pub fn generate(sel4: &Path, autoconf: &str) -> Result<String, String> {
    let defs = Defines::from_autoconf(autoconf);
    let lib = sel4.join("libsel4");
    let (methods, structs, count) = numbered(sel4, &defs)?;

    let mut known = Vec::new();
    let mut enums = |rel: &str| -> Result<Vec<Constant>, String> {
        cheader::enums(&read(&lib, rel)?, &defs, &mut known).map_err(|e| format!("{rel}: {e}"))
    };
    let mut objects = enums("include/sel4/objecttype.h")?;
    objects.extend(enums(
        "sel4_arch_include/x86_64/sel4/sel4_arch/objecttype.h",
    )?);
    objects.extend(enums("arch_include/x86/sel4/arch/objecttype.h")?);
    let errors = enums("include/sel4/errors.h")?;
    let slots = enums("include/sel4/bootinfo_types.h")?;
    let chunks = cheader::defines(
        &read(&lib, "include/sel4/bootinfo_types.h")?,
        "SEL4_BOOTINFO_HEADER_",
    )
    .map_err(|e| format!("include/sel4/bootinfo_types.h: {e}"))?;
    let mut consts = enums("include/sel4/constants.h")?;
    consts.extend(enums(
        "sel4_arch_include/x86_64/sel4/sel4_arch/constants.h",
    )?);
    let faults = cheader::bf_tags(
        &read(&lib, "arch_include/x86/sel4/arch/shared_types.bf")?,
        "seL4_Fault",
        &defs,
    )?;

    let mut s = String::new();
    s.push_str(HEADER);
    let _ = writeln!(
        s,
        "/// Invocation labels (`enum invocation_label` and the arch extensions)."
    );
    let _ = writeln!(s, "pub mod label {{\n    use crate::Word;\n");
    let _ = writeln!(
        s,
        "    /// Not an invocation.\n    pub const InvalidInvocation: Word = 0;"
    );
    for m in &methods {
        let _ = writeln!(
            s,
            "    /// `{}_{}`.\n    pub const {}: Word = {};",
            m.interface, m.name, m.id, m.label
        );
    }
    let _ = writeln!(
        s,
        "    /// Number of labels in this configuration.\n    pub const COUNT: Word = {count};\n}}\n"
    );
    const_mod(
        &mut s,
        "object",
        "Object types for `untyped_retype` (`seL4_ObjectType`).",
        &objects,
    );
    const_mod(
        &mut s,
        "slot",
        "Capability slots of the root task's initial CSpace.",
        &slots,
    );
    const_mod(
        &mut s,
        "bootinfo_header",
        "Identifiers of the extra boot-information chunks (`seL4_BootInfoHeader.id`).",
        &chunks,
    );
    const_mod(
        &mut s,
        "consts",
        "Other constants of `constants.h` (priorities, message limits, fault message layouts).",
        &consts,
    );
    let tags: Vec<Constant> = faults
        .iter()
        .map(|c| Constant {
            name: format!("seL4_Fault_{}", c.name),
            value: c.value,
        })
        .collect();
    const_mod(
        &mut s,
        "fault",
        "Fault labels of a fault message (`seL4_FaultType`).",
        &tags,
    );
    error_enum(&mut s, &errors)?;
    config_mod(&mut s, autoconf);
    for st in &structs {
        let _ = writeln!(
            s,
            "/// `{}`, as the kernel reads and writes it in message words.",
            st.name
        );
        let _ = writeln!(
            s,
            "#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]\n#[allow(missing_docs)]"
        );
        let _ = writeln!(s, "pub struct {} {{", methods::struct_rust_name(&st.name));
        for m in &st.members {
            let _ = writeln!(s, "    pub {m}: Word,");
        }
        s.push_str("}\n\n");
    }
    let _ = writeln!(
        s,
        "/// Invocation stubs, one per method whose parameters are all words or capabilities."
    );
    let _ = writeln!(
        s,
        "pub mod invocation {{\n    #[allow(unused_imports)]\n    use crate::*;\n"
    );
    for m in &methods {
        if let Some(stub) = methods::render_stub(m, &structs) {
            for line in stub.lines() {
                if line.is_empty() {
                    s.push('\n');
                } else {
                    let _ = writeln!(s, "    {line}");
                }
            }
        }
    }
    s.push_str("}\n");
    Ok(s)
}

const HEADER: &str = "//! Generated by `cargo xtask image` (build/xtask/src/image/bindings.rs) from the interface XML\n\
//! and headers of seL4 5.0.0 under this image's kernel configuration. Do not edit: rerun\n\
//! `cargo xtask image --bless` after changing the generator or the configuration.\n\n\
use crate::Word;\n\n";

fn const_mod(s: &mut String, name: &str, doc: &str, items: &[Constant]) {
    let _ = writeln!(s, "/// {doc}\npub mod {name} {{\n    use crate::Word;\n");
    for c in items {
        let v = if c.value < 0 {
            format!("({}i64) as Word", c.value)
        } else {
            c.value.to_string()
        };
        let _ = writeln!(
            s,
            "    /// `{}`.\n    pub const {}: Word = {v};",
            c.name, c.name
        );
    }
    s.push_str("}\n\n");
}

/// The numeric settings of autoconf.h, so programs use the kernel's limits instead of copies.
fn config_mod(s: &mut String, autoconf: &str) {
    let _ = writeln!(
        s,
        "/// Numeric settings of the kernel configuration (autoconf.h).\npub mod config {{\n    use crate::Word;\n"
    );
    for line in autoconf.lines() {
        let mut w = line.split_whitespace();
        if let (Some("#define"), Some(name), Some(value), None) =
            (w.next(), w.next(), w.next(), w.next())
            && let Ok(v) = value.parse::<u64>()
        {
            let _ = writeln!(s, "    /// `{name}`.\n    pub const {name}: Word = {v};");
        }
    }
    s.push_str("}\n\n");
}

fn error_enum(s: &mut String, errors: &[Constant]) -> Result<(), String> {
    let body: Vec<&Constant> = errors
        .iter()
        .filter(|c| c.value > 0 && c.name != "seL4_NumErrors")
        .collect();
    if errors.first().map(|c| (c.name.as_str(), c.value)) != Some(("seL4_NoError", 0))
        || body.is_empty()
    {
        return Err("errors.h: expected seL4_NoError = 0 and at least one error".into());
    }
    let _ = writeln!(s, "/// An error returned by an invocation (`seL4_Error`).");
    let _ = writeln!(
        s,
        "#[derive(Debug, Clone, Copy, PartialEq, Eq)]\npub enum Error {{"
    );
    for c in &body {
        let _ = writeln!(
            s,
            "    /// `{}` ({}).\n    {},",
            c.name,
            c.value,
            c.name.trim_start_matches("seL4_")
        );
    }
    let _ = writeln!(
        s,
        "    /// A label outside the kernel's error range.\n    Unknown(Word),\n}}\n"
    );
    let _ = writeln!(
        s,
        "impl Error {{\n    /// Maps a reply label: 0 is success, anything else an error."
    );
    let _ = writeln!(
        s,
        "    pub fn check(label: Word) -> Result<(), Error> {{\n        match label {{\n            0 => Ok(()),"
    );
    for c in &body {
        let _ = writeln!(
            s,
            "            {} => Err(Error::{}),",
            c.value,
            c.name.trim_start_matches("seL4_")
        );
    }
    let _ = writeln!(
        s,
        "            other => Err(Error::Unknown(other)),\n        }}\n    }}\n"
    );
    let _ = writeln!(
        s,
        "    /// The kernel's error number.\n    pub fn code(self) -> Word {{\n        match self {{"
    );
    for c in &body {
        let _ = writeln!(
            s,
            "            Error::{} => {},",
            c.name.trim_start_matches("seL4_"),
            c.value
        );
    }
    let _ = writeln!(
        s,
        "            Error::Unknown(l) => l,\n        }}\n    }}\n}}\n"
    );
    let _ = writeln!(s, "impl core::fmt::Display for Error {{");
    let _ = writeln!(
        s,
        "    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {{\n        match self {{"
    );
    for c in &body {
        let n = c.name.trim_start_matches("seL4_");
        let _ = writeln!(
            s,
            "            Error::{n} => f.write_str(\"seL4 error {n}\"),"
        );
    }
    let _ = writeln!(
        s,
        "            Error::Unknown(l) => write!(f, \"seL4 error label {{l}}\"),\n        }}\n    }}\n}}\n"
    );
    Ok(())
}

//! Reads the kernel's interface XML: numbers the invocation labels the way the kernel does and
//! renders one Rust stub per method.
//!
//! Numbering (seL4 5.0.0, `tools/invocation_header_gen.py`): `InvalidInvocation` is 0, then the
//! generic methods of `sel4.xml` in document order, then those of the word-size specific file
//! (`sel4_arch_include/x86_64`), then the architecture file (`arch_include/x86`). A method whose
//! `condition` is false under the configuration takes no number.
//!
//! Marshalling (`tools/syscall_stub_gen.py` of the same release): the first capability parameter
//! after the invoked one goes to extra-cap 0 and so on; the other input parameters are packed
//! into message words in order, each aligned to the smaller of its size and a word; outputs are
//! unpacked from the reply's message words the same way.

use std::fmt::Write;

use super::cond::Defines;

/// One parameter of a method.
#[derive(Debug, Clone)]
pub struct Param {
    /// Parameter name in the XML.
    pub name: String,
    /// C type name in the XML.
    pub ty: String,
    /// `dir="out"`.
    pub out: bool,
}

/// One method that survives the configuration, with its label.
#[derive(Debug, Clone)]
pub struct Method {
    /// Interface, e.g. `seL4_X86_Page`.
    pub interface: String,
    /// Method name, e.g. `Map`.
    pub name: String,
    /// Label name, e.g. `X86PageMap`.
    pub id: String,
    /// Label number.
    pub label: u64,
    /// Parameters in XML order.
    pub params: Vec<Param>,
}

/// A structure passed by value in message words (`<struct>` of the XML).
#[derive(Debug, Clone)]
pub struct Struct {
    /// C name, e.g. `seL4_UserContext`.
    pub name: String,
    /// Member names, one word each, in message order.
    pub members: Vec<String>,
}

/// The Rust name of a structure: `seL4_UserContext` → `UserContext`.
pub fn struct_rust_name(c: &str) -> String {
    c.trim_start_matches("seL4_").to_string()
}

/// The three interface files, in numbering order.
pub struct Sources<'a> {
    /// `libsel4/include/interfaces/sel4.xml`.
    pub generic: &'a str,
    /// `libsel4/sel4_arch_include/x86_64/interfaces/sel4arch.xml`.
    pub sel4_arch: &'a str,
    /// `libsel4/arch_include/x86/interfaces/sel4arch.xml`.
    pub arch: &'a str,
}

/// Numbers every method of the three files under the configuration. Returns the surviving
/// methods and the total label count (`nArchInvocationLabels`).
pub fn number(
    src: &Sources<'_>,
    defs: &Defines,
) -> Result<(Vec<Method>, Vec<Struct>, u64), String> {
    let mut out = Vec::new();
    let mut structs = Vec::new();
    let mut next = 1; // 0 is InvalidInvocation
    for (file, text) in [
        ("sel4.xml", src.generic),
        ("x86_64 sel4arch.xml", src.sel4_arch),
        ("x86 sel4arch.xml", src.arch),
    ] {
        let doc = roxmltree::Document::parse(text).map_err(|e| format!("{file}: {e}"))?;
        for st in doc.descendants().filter(|n| n.has_tag_name("struct")) {
            structs.push(Struct {
                name: st
                    .attribute("name")
                    .ok_or(format!("{file}: struct without name"))?
                    .to_string(),
                members: st
                    .children()
                    .filter(|n| n.has_tag_name("member"))
                    .filter_map(|n| n.attribute("name").map(str::to_string))
                    .collect(),
            });
        }
        for iface in doc.descendants().filter(|n| n.has_tag_name("interface")) {
            let iname = iface
                .attribute("name")
                .ok_or(format!("{file}: interface without name"))?;
            for m in iface.children().filter(|n| n.has_tag_name("method")) {
                let cond = m.attribute("condition").unwrap_or("");
                let holds = defs.holds(cond).map_err(|e| format!("{file}: {e}"))?;
                if !holds {
                    continue;
                }
                let params = m
                    .children()
                    .filter(|n| n.has_tag_name("param"))
                    .map(|p| Param {
                        name: p.attribute("name").unwrap_or("arg").to_string(),
                        ty: p.attribute("type").unwrap_or("").to_string(),
                        out: p.attribute("dir") == Some("out"),
                    })
                    .collect();
                out.push(Method {
                    interface: iname.to_string(),
                    name: m
                        .attribute("name")
                        .ok_or(format!("{file}: method without name"))?
                        .to_string(),
                    id: m
                        .attribute("id")
                        .ok_or(format!("{file}: method without id"))?
                        .to_string(),
                    label: next,
                    params,
                });
                next += 1;
            }
        }
    }
    Ok((out, structs, next))
}

/// How a C type travels: as a capability, packed into message words of `bits` size, or as a
/// structure of whole words.
enum Kind {
    Cap,
    Bits { bits: u32, rust: &'static str },
    Struct(Struct),
}

fn kind(ty: &str, structs: &[Struct]) -> Option<Kind> {
    if let Some(st) = structs.iter().find(|s| s.name == ty) {
        return Some(Kind::Struct(st.clone()));
    }
    Some(match ty {
        "seL4_Bool" => Kind::Bits {
            bits: 1,
            rust: "bool",
        },
        "seL4_Uint8" => Kind::Bits {
            bits: 8,
            rust: "u8",
        },
        "seL4_Uint16" => Kind::Bits {
            bits: 16,
            rust: "u16",
        },
        "seL4_Uint32" => Kind::Bits {
            bits: 32,
            rust: "u32",
        },
        "seL4_Uint64"
        | "seL4_Word"
        | "seL4_CapData_t"
        | "seL4_PrioProps_t"
        | "seL4_CapRights_t"
        | "seL4_X86_VMAttributes" => Kind::Bits {
            bits: 64,
            rust: "Word",
        },
        "seL4_CPtr"
        | "seL4_CNode"
        | "seL4_IRQHandler"
        | "seL4_IRQControl"
        | "seL4_TCB"
        | "seL4_Untyped"
        | "seL4_DomainSet"
        | "seL4_X86_IOPort"
        | "seL4_X86_ASIDControl"
        | "seL4_X86_ASIDPool"
        | "seL4_X86_IOSpace"
        | "seL4_X86_Page"
        | "seL4_X64_PML4"
        | "seL4_X86_PDPT"
        | "seL4_X86_PageDirectory"
        | "seL4_X86_PageTable"
        | "seL4_X86_IOPageTable"
        | "seL4_X86_VCPU"
        | "seL4_X86_EPTPML4"
        | "seL4_X86_EPTPDPT"
        | "seL4_X86_EPTPD"
        | "seL4_X86_EPTPT" => Kind::Cap,
        _ => return None, // a type this generator does not know: no stub
    })
}

/// `seL4_X86_ASIDPool` + `Assign` → `x86_asid_pool_assign`.
pub fn snake(interface: &str, method: &str) -> String {
    let s = format!("{}_{method}", interface.trim_start_matches("seL4_")).replace("CNode", "Cnode");
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out.replace("__", "_")
}

/// A parameter with its transport: bits, or a structure's words.
struct Placed<'a> {
    p: &'a Param,
    bits: u32,
    rust: String,
    st: Option<Struct>,
}

/// Bit positions of packed parameters: (index into `params`, first bit).
fn positions(params: &[Placed<'_>]) -> Vec<u32> {
    let mut used = 0u32;
    params
        .iter()
        .map(|pl| {
            let align = pl.bits.min(64);
            used = used.div_ceil(align) * align;
            let at = used;
            used += pl.bits;
            at
        })
        .collect()
}

fn ident(n: &str) -> String {
    if n == "type" {
        "r#type".to_string()
    } else {
        n.to_string()
    }
}

/// Renders the stub of one method, or `None` when a parameter's type is unknown.
pub fn render_stub(m: &Method, structs: &[Struct]) -> Option<String> {
    let mut caps = Vec::new();
    let mut ins = Vec::new();
    let mut outs = Vec::new();
    for p in &m.params {
        let placed = match kind(&p.ty, structs)? {
            Kind::Cap if !p.out => {
                caps.push(p);
                continue;
            }
            Kind::Cap => return None,
            Kind::Bits { bits, rust } => Placed {
                p,
                bits,
                rust: rust.to_string(),
                st: None,
            },
            Kind::Struct(st) => Placed {
                p,
                bits: 64 * st.members.len() as u32,
                rust: struct_rust_name(&st.name),
                st: Some(st),
            },
        };
        if p.out {
            outs.push(placed)
        } else {
            ins.push(placed)
        }
    }
    let mut args = vec!["service: CPtr".to_string()];
    args.extend(caps.iter().map(|p| format!("{}: CPtr", ident(&p.name))));
    for pl in &ins {
        let amp = if pl.st.is_some() { "&" } else { "" };
        args.push(format!("{}: {amp}{}", ident(&pl.p.name), pl.rust));
    }
    let ret = match outs.as_slice() {
        [] => "()".to_string(),
        [one] => one.rust.clone(),
        many => format!(
            "({})",
            many.iter()
                .map(|pl| pl.rust.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };

    let mut words: Vec<Vec<String>> = Vec::new();
    for (pl, at) in ins.iter().zip(positions(&ins)) {
        let w = (at / 64) as usize;
        let n = pl.bits.div_ceil(64) as usize;
        words.resize(words.len().max(w + n), Vec::new());
        let name = ident(&pl.p.name);
        if let Some(st) = &pl.st {
            for (i, member) in st.members.iter().enumerate() {
                words[w + i].push(format!("{name}.{member}"));
            }
        } else if pl.bits == 64 {
            words[w].push(format!("({name} as Word)"));
        } else {
            words[w].push(format!(
                "((({name} as Word) & {:#x}) << {})",
                (1u64 << pl.bits) - 1,
                at % 64
            ));
        }
    }
    let words: Vec<String> = words
        .into_iter()
        .map(|w| {
            if w.is_empty() {
                "0".into()
            } else {
                w.join(" | ")
            }
        })
        .collect();

    let fname = snake(&m.interface, &m.name);
    let mut s = String::new();
    let _ = writeln!(s, "/// `{}_{}` (label `{}`).", m.interface, m.name, m.id);
    let _ = writeln!(
        s,
        "///\n/// # Safety\n///\n/// The calling thread's IPC buffer is set up, and the invocation's effect on address"
    );
    let _ = writeln!(
        s,
        "/// spaces or capabilities does not invalidate memory that live Rust references point to."
    );
    let _ = writeln!(
        s,
        "#[allow(clippy::too_many_arguments, clippy::unnecessary_cast, clippy::identity_op)]"
    );
    let _ = writeln!(
        s,
        "pub unsafe fn {fname}({}) -> Result<{ret}, Error> {{",
        args.join(", ")
    );
    let caps_list = caps
        .iter()
        .map(|p| ident(&p.name))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "    let words: [Word; {}] = [{}];",
        words.len(),
        words.join(", ")
    );
    let _ = writeln!(
        s,
        "    // SAFETY: the caller guarantees the IPC buffer and the effect (this function's contract)."
    );
    let _ = writeln!(
        s,
        "    let reply = unsafe {{ invoke(service, label::{}, &[{caps_list}], &words) }};",
        m.id
    );
    let _ = writeln!(s, "    Error::check(reply.label())?;");
    if outs.is_empty() {
        let _ = writeln!(s, "    Ok(())");
    } else {
        let pos = positions(&outs);
        let n = outs
            .iter()
            .zip(&pos)
            .map(|(pl, at)| (at + pl.bits).div_ceil(64))
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            s,
            "    // SAFETY: `invoke` left the reply's message words in this thread's IPC buffer."
        );
        let _ = writeln!(s, "    let r: [Word; {n}] = unsafe {{ reply_words() }};");
        let mut vals = Vec::new();
        for (pl, at) in outs.iter().zip(pos) {
            let w = (at / 64) as usize;
            vals.push(if let Some(st) = &pl.st {
                let fields: Vec<String> = st
                    .members
                    .iter()
                    .enumerate()
                    .map(|(i, mem)| format!("{mem}: r[{}]", w + i))
                    .collect();
                format!("{} {{ {} }}", pl.rust, fields.join(", "))
            } else if pl.bits == 64 {
                format!("r[{w}]")
            } else {
                format!(
                    "(((r[{w}]) >> {}) & {:#x}) as {}",
                    at % 64,
                    (1u64 << pl.bits) - 1,
                    pl.rust
                )
            });
        }
        let v = if vals.len() == 1 {
            vals.remove(0)
        } else {
            format!("({})", vals.join(", "))
        };
        let _ = writeln!(s, "    Ok({v})");
    }
    let _ = writeln!(s, "}}\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENERIC: &str = r#"<api><interface name="seL4_Untyped"><method id="UntypedRetype" name="Retype">
      <param dir="in" name="type" type="seL4_Word"/><param dir="in" name="root" type="seL4_CNode"/>
    </method></interface><interface name="seL4_TCB">
      <method id="TCBReadRegisters" name="ReadRegisters"><param dir="in" name="suspend_source" type="seL4_Bool"/>
        <param dir="in" name="arch_flags" type="seL4_Uint8"/><param dir="in" name="count" type="seL4_Word"/>
        <param dir="out" name="regs" type="seL4_UserContext"/></method>
      <method id="TCBSetAffinity" name="SetAffinity" condition="CONFIG_MAX_NUM_NODES &gt; 1"/>
      <method id="TCBSuspend" name="Suspend"/></interface></api>"#;
    const SEL4_ARCH: &str = r#"<api><interface name="seL4_X86_PDPT"><method id="X86PDPTMap" name="Map"/></interface></api>"#;
    const ARCH: &str = r#"<api><interface name="seL4_X86_Page"><method id="X86PageMapEPT" name="MapEPT" condition="defined(CONFIG_VTX)"/>
      <method id="X86PageGetAddress" name="GetAddress"><param dir="out" name="paddr" type="seL4_Word"/></method></interface>
      <interface name="seL4_X86_IOPort"><method id="X86IOPortIn8" name="In8"><param dir="out" name="result" type="seL4_Uint8"/>
      <param dir="in" name="port" type="seL4_Uint16"/></method></interface></api>"#;

    fn src() -> Sources<'static> {
        Sources {
            generic: GENERIC,
            sel4_arch: SEL4_ARCH,
            arch: ARCH,
        }
    }

    fn labels(defs: &Defines) -> Vec<(String, u64)> {
        number(&src(), defs)
            .unwrap()
            .0
            .into_iter()
            .map(|m| (m.id, m.label))
            .collect()
    }

    #[test]
    fn labels_follow_generic_then_word_size_then_arch_order() {
        let got = labels(&Defines::from_autoconf("#define CONFIG_MAX_NUM_NODES 1\n"));
        let want = [
            ("UntypedRetype", 1),
            ("TCBReadRegisters", 2),
            ("TCBSuspend", 3),
            ("X86PDPTMap", 4),
            ("X86PageGetAddress", 5),
            ("X86IOPortIn8", 6),
        ];
        assert_eq!(got, want.map(|(n, l)| (n.to_string(), l)));
    }

    #[test]
    fn enabled_conditional_methods_shift_every_later_label() {
        let got = labels(&Defines::from_autoconf(
            "#define CONFIG_MAX_NUM_NODES 2\n#define CONFIG_VTX 1\n",
        ));
        assert_eq!(got[3], ("TCBSuspend".to_string(), 4));
        assert_eq!(got[5], ("X86PageMapEPT".to_string(), 6));
        assert_eq!(got[6], ("X86PageGetAddress".to_string(), 7));
    }

    #[test]
    fn names_become_snake_case_with_acronyms_kept_together() {
        assert_eq!(snake("seL4_X86_ASIDPool", "Assign"), "x86_asid_pool_assign");
        assert_eq!(snake("seL4_CNode", "Copy"), "cnode_copy");
        assert_eq!(
            snake("seL4_IRQControl", "GetIOAPIC"),
            "irq_control_get_ioapic"
        );
        assert_eq!(snake("seL4_TCB", "SetIPCBuffer"), "tcb_set_ipc_buffer");
        assert_eq!(snake("seL4_X64_PML4", "Map"), "x64_pml4_map");
    }

    #[test]
    fn sub_word_parameters_are_packed_like_the_c_stub_generator() {
        let (ms, structs, _) = number(&src(), &Defines::default()).unwrap();
        // seL4_UserContext is not declared in this test's XML: no stub rather than a guess.
        assert!(render_stub(&ms[1], &structs).is_none());
        let mut m = ms[1].clone();
        m.params.pop();
        let stub = render_stub(&m, &structs).unwrap();
        // suspend_source at bit 0, arch_flags aligned to bit 8, count in the next word.
        assert!(stub.contains("[(((suspend_source as Word) & 0x1) << 0) | (((arch_flags as Word) & 0xff) << 8), (count as Word)]"), "{stub}");
    }

    #[test]
    fn caps_travel_as_extra_caps_and_outputs_are_unpacked() {
        let (ms, structs, _) = number(&src(), &Defines::default()).unwrap();
        let retype = render_stub(&ms[0], &structs).unwrap();
        assert!(retype.contains("pub unsafe fn untyped_retype(service: CPtr, root: CPtr, r#type: Word) -> Result<(), Error>"), "{retype}");
        assert!(retype.contains("invoke(service, label::UntypedRetype, &[root], &words)"));
        let in8 = render_stub(&ms[5], &structs).unwrap();
        assert!(in8.contains("-> Result<u8, Error>"));
        assert!(in8.contains("(((r[0]) >> 0) & 0xff) as u8"), "{in8}");
    }

    #[test]
    fn structures_travel_as_whole_words_after_packed_flags() {
        let regs = Struct {
            name: "seL4_UserContext".into(),
            members: vec!["rip".into(), "rsp".into()],
        };
        let (ms, _, _) = number(&src(), &Defines::default()).unwrap();
        let mut m = ms[1].clone();
        m.params[3].out = false;
        let stub = render_stub(&m, std::slice::from_ref(&regs)).unwrap();
        assert!(stub.contains("regs: &UserContext"), "{stub}");
        assert!(
            stub.contains("(count as Word), regs.rip, regs.rsp]"),
            "{stub}"
        );
        let read = render_stub(&ms[1], &[regs]).unwrap();
        assert!(
            read.contains("Ok(UserContext { rip: r[0], rsp: r[1] })"),
            "{read}"
        );
    }
}

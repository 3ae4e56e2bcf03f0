//! Reads the constants that libsel4 keeps in C headers and bitfield files (object types, error
//! codes, initial capability slots, fault tags, fault message layouts).
//!
//! Only what those files use is understood: `enum { A, B = 3, C = OTHER, D = EXPR }` bodies,
//! `#if`/`#ifdef`/`#ifndef`/`#else`/`#endif` around them, comments, and the
//! `SEL4_FORCE_LONG_ENUM(...)` padding entries, which are skipped.

use super::cond::Defines;

/// One enumerator that survives the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constant {
    /// The C name, as written.
    pub name: String,
    /// Its value under the configuration.
    pub value: i64,
}

/// Tracks nested `#if` blocks: each level is (this branch active, some branch already taken).
struct IfStack(Vec<(bool, bool)>);

impl IfStack {
    fn active(&self) -> bool {
        self.0.iter().all(|(on, _)| *on)
    }

    /// Applies a preprocessor line; returns false when the line is no conditional.
    fn apply(&mut self, line: &str, defs: &Defines) -> Result<bool, String> {
        let line = line.trim_start_matches('#').trim();
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.split("/*").next().unwrap_or("").trim();
        match word {
            "ifdef" => self.push(defs.get(rest).is_some()),
            "ifndef" => self.push(defs.get(rest).is_none()),
            "if" => self.push(defs.holds(rest)?),
            "else" => {
                let top = self.0.last_mut().ok_or("#else without #if")?;
                *top = (!top.1, true);
            }
            "endif" => {
                self.0.pop().ok_or("#endif without #if")?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn push(&mut self, on: bool) {
        self.0.push((on, on));
    }
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start..].find("*/") {
            Some(end) => {
                // Keep line structure so preprocessor lines stay on their own lines.
                let removed = &rest[start..start + end + 2];
                out.extend(removed.chars().filter(|&c| c == '\n'));
                rest = &rest[start + end + 2..];
            }
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// All enumerators of all `enum` bodies in a header, in order, with their values. Names of
/// earlier enumerators (from this call's `known` list too) may appear in later value expressions.
pub fn enums(
    text: &str,
    defs: &Defines,
    known: &mut Vec<Constant>,
) -> Result<Vec<Constant>, String> {
    let mut out = Vec::new();
    let mut ifs = IfStack(Vec::new());
    let mut in_enum = false;
    let mut next = 0i64;
    for raw in strip_comments(text).lines() {
        let line = raw.trim();
        if line.starts_with('#') {
            ifs.apply(line, defs)?;
            continue;
        }
        if !in_enum {
            if line.contains("enum") && line.ends_with('{') {
                in_enum = true;
                next = 0;
            }
            continue;
        }
        if line.starts_with('}') {
            in_enum = false;
            continue;
        }
        if !ifs.active() || line.is_empty() || line.starts_with("SEL4_FORCE_LONG_ENUM") {
            continue;
        }
        for item in line.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.starts_with("SEL4_FORCE_LONG_ENUM") {
                continue;
            }
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n.trim(), eval_with(v.trim(), defs, known)?),
                None => (item, next),
            };
            let c = Constant {
                name: name.to_string(),
                value,
            };
            known.push(c.clone());
            out.push(c);
            next = value + 1;
        }
    }
    if !ifs.0.is_empty() {
        return Err("unterminated #if".into());
    }
    Ok(out)
}

fn eval_with(expr: &str, defs: &Defines, known: &[Constant]) -> Result<i64, String> {
    let mut d = defs.clone();
    for c in known {
        d.set(&c.name, c.value);
    }
    // An enumerator that names an unknown symbol would silently read 0 in C's `#if`; here it
    // is an error, since an enum value must be fully determined.
    for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && d.get(word).is_none()
        {
            return Err(format!("enum value `{expr}` names unknown `{word}`"));
        }
    }
    d.eval(expr)
}

/// The `#define NAME VALUE` lines whose name starts with `prefix` and whose value is a decimal or
/// `0x` hexadecimal number (the boot-information chunk identifiers of `bootinfo_types.h`).
pub fn defines(text: &str, prefix: &str) -> Result<Vec<Constant>, String> {
    let mut out = Vec::new();
    for line in strip_comments(text).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let ["#define", name, value] = words.as_slice() else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        let parsed = match value.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => value.parse(),
        };
        out.push(Constant {
            name: (*name).to_string(),
            value: parsed.map_err(|_| format!("bad value in `{}`", line.trim()))?,
        });
    }
    if out.is_empty() {
        return Err(format!("no #define {prefix}*"));
    }
    Ok(out)
}

/// The `tag NAME VALUE` lines of one `tagged_union` in a bitfield (.bf) file.
pub fn bf_tags(text: &str, union: &str, defs: &Defines) -> Result<Vec<Constant>, String> {
    let mut out = Vec::new();
    let mut ifs = IfStack(Vec::new());
    let mut inside = false;
    for raw in text.lines() {
        let line = raw.split("--").next().unwrap_or("").trim();
        if line.starts_with('#') {
            ifs.apply(line, defs)?;
            continue;
        }
        if line.starts_with("tagged_union") {
            inside = line.split_whitespace().nth(1) == Some(union);
            continue;
        }
        if inside && line.starts_with('}') {
            inside = false;
        }
        if !inside || !ifs.active() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["tag", name, value] = words.as_slice() {
            let value = value
                .parse()
                .map_err(|_| format!("bad tag value in `{line}`"))?;
            out.push(Constant {
                name: (*name).to_string(),
                value,
            });
        }
    }
    if out.is_empty() {
        return Err(format!("no tags of tagged_union {union}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBJ: &str = "typedef enum _object {
    seL4_X86_4K = seL4_ModeObjectTypeCount,
    seL4_X86_LargePageObject, /* comment, with comma */
#ifdef CONFIG_IOMMU
    seL4_X86_IOPageTableObject,
#endif
#if defined(CONFIG_VTX) && 1
    seL4_X86_VCPUObject,
#else
    seL4_NoVcpu,
#endif
    seL4_ObjectTypeCount
} seL4_ArchObjectType;
#ifndef CONFIG_IOMMU
#define seL4_X86_IOPageTableObject 0xffffff
#endif
";

    fn known() -> Vec<Constant> {
        vec![Constant {
            name: "seL4_ModeObjectTypeCount".into(),
            value: 7,
        }]
    }

    #[test]
    fn enumerators_inside_false_ifdef_do_not_take_a_number() {
        let defs = Defines::default();
        let got = enums(OBJ, &defs, &mut known()).unwrap();
        let names: Vec<_> = got.iter().map(|c| (c.name.as_str(), c.value)).collect();
        assert_eq!(
            names,
            [
                ("seL4_X86_4K", 7),
                ("seL4_X86_LargePageObject", 8),
                ("seL4_NoVcpu", 9),
                ("seL4_ObjectTypeCount", 10)
            ]
        );
    }

    #[test]
    fn configured_options_shift_later_enumerators() {
        let mut defs = Defines::default();
        defs.set("CONFIG_IOMMU", 1);
        defs.set("CONFIG_VTX", 1);
        let got = enums(OBJ, &defs, &mut known()).unwrap();
        assert_eq!(got[2].name, "seL4_X86_IOPageTableObject");
        assert_eq!(
            got[3],
            Constant {
                name: "seL4_X86_VCPUObject".into(),
                value: 10
            }
        );
        assert_eq!(got[4].value, 11);
    }

    #[test]
    fn unknown_names_in_values_are_errors() {
        let text = "enum {\n A = MISSING + 1,\n};\n";
        assert!(enums(text, &Defines::default(), &mut Vec::new()).is_err());
    }

    #[test]
    fn forced_long_padding_is_not_an_enumerator() {
        let text =
            "enum {\n seL4_VMFault_IP,\n seL4_VMFault_Addr,\n SEL4_FORCE_LONG_ENUM(x),\n} t;\n";
        let got = enums(text, &Defines::default(), &mut Vec::new()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].value, 1);
    }

    #[test]
    fn prefixed_defines_are_read_in_decimal_and_hex() {
        let text = "#define SEL4_BOOTINFO_HEADER_PADDING 0\n#define OTHER 5\n#define SEL4_BOOTINFO_HEADER_X86_HYPERV 0x4856 /* HV */\n";
        let got = defines(text, "SEL4_BOOTINFO_HEADER_").unwrap();
        let got: Vec<_> = got.iter().map(|c| (c.name.as_str(), c.value)).collect();
        assert_eq!(
            got,
            [
                ("SEL4_BOOTINFO_HEADER_PADDING", 0),
                ("SEL4_BOOTINFO_HEADER_X86_HYPERV", 0x4856)
            ]
        );
        assert!(defines("#define SEL4_X y\n", "SEL4_").is_err());
        assert!(defines("", "SEL4_").is_err());
    }

    #[test]
    fn bitfield_tags_respect_ifdef() {
        let bf = "tagged_union seL4_Fault seL4_FaultType {\n tag NullFault 0\n#ifdef CONFIG_HARDWARE_DEBUG_API\n tag DebugException 4\n#endif\n tag VMFault 5 -- arch\n}\n";
        let got = bf_tags(bf, "seL4_Fault", &Defines::default()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            Constant {
                name: "VMFault".into(),
                value: 5
            }
        );
    }
}

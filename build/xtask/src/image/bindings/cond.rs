//! Evaluates the C preprocessor conditions of the kernel's interface files against a configuration.
//!
//! The interface XML guards methods with `condition="defined(CONFIG_VTX)"` or
//! `condition="CONFIG_MAX_NUM_NODES > 1"`, and the C headers use `#ifdef`/`#if`. Only integer
//! arithmetic, comparisons, `!`, `&&`, `||`, parentheses and `defined(NAME)` occur there, which
//! is what this evaluator accepts; anything else is an error rather than a guess.

use std::collections::HashMap;

/// Preprocessor symbols and their integer values (`#define NAME VALUE` of autoconf.h).
#[derive(Debug, Clone, Default)]
pub struct Defines(HashMap<String, i64>);

impl Defines {
    /// Reads the `#define NAME VALUE` lines of a generated autoconf.h. A define without a
    /// numeric value (a string, or nothing) counts as 1, like `#ifdef` sees it.
    pub fn from_autoconf(text: &str) -> Self {
        let mut map = HashMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("#define") {
                continue;
            }
            let Some(name) = words.next() else { continue };
            let value = words.next().and_then(parse_int).unwrap_or(1);
            map.insert(name.to_string(), value);
        }
        Defines(map)
    }

    /// Adds or replaces one symbol.
    pub fn set(&mut self, name: &str, value: i64) {
        self.0.insert(name.to_string(), value);
    }

    /// The value of a symbol, if defined.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.0.get(name).copied()
    }

    /// Whether a condition holds; an empty condition always holds.
    pub fn holds(&self, condition: &str) -> Result<bool, String> {
        if condition.trim().is_empty() {
            return Ok(true);
        }
        Ok(self.eval(condition)? != 0)
    }

    /// Evaluates an integer expression; undefined identifiers are 0, as in C's `#if`.
    pub fn eval(&self, expr: &str) -> Result<i64, String> {
        let tokens = tokenize(expr)?;
        let mut p = Parser {
            tokens: &tokens,
            pos: 0,
            defs: self,
        };
        let v = p.or()?;
        if p.pos != tokens.len() {
            return Err(format!("unexpected `{}` in `{expr}`", tokens[p.pos]));
        }
        Ok(v)
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim_end_matches(['u', 'U', 'l', 'L']);
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn tokenize(expr: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["&&", "||", "==", "!=", ">=", "<=", "<<", ">>"].contains(&two.as_str()) {
                out.push(two);
                i += 2;
            } else if "()!<>+-*".contains(c) {
                out.push(c.to_string());
                i += 1;
            } else {
                return Err(format!("unsupported character `{c}` in `{expr}`"));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [String],
    pos: usize,
    defs: &'a Defines,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn eat(&mut self, t: &str) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<i64, String> {
        let mut v = self.and()?;
        while self.eat("||") {
            let r = self.and()?;
            v = i64::from(v != 0 || r != 0);
        }
        Ok(v)
    }

    fn and(&mut self) -> Result<i64, String> {
        let mut v = self.cmp()?;
        while self.eat("&&") {
            let r = self.cmp()?;
            v = i64::from(v != 0 && r != 0);
        }
        Ok(v)
    }

    fn cmp(&mut self) -> Result<i64, String> {
        let mut v = self.sum()?;
        loop {
            let op = match self.peek() {
                Some(op @ ("==" | "!=" | "<" | ">" | "<=" | ">=")) => op.to_string(),
                _ => return Ok(v),
            };
            self.pos += 1;
            let r = self.sum()?;
            v = i64::from(match op.as_str() {
                "==" => v == r,
                "!=" => v != r,
                "<" => v < r,
                ">" => v > r,
                "<=" => v <= r,
                _ => v >= r,
            });
        }
    }

    fn sum(&mut self) -> Result<i64, String> {
        let mut v = self.unary()?;
        loop {
            if self.eat("+") {
                v = v.wrapping_add(self.unary()?);
            } else if self.eat("-") {
                v = v.wrapping_sub(self.unary()?);
            } else if self.eat("*") {
                v = v.wrapping_mul(self.unary()?);
            } else if self.eat("<<") {
                v = v.wrapping_shl(self.unary()? as u32);
            } else if self.eat(">>") {
                v = v.wrapping_shr(self.unary()? as u32);
            } else {
                return Ok(v);
            }
        }
    }

    fn unary(&mut self) -> Result<i64, String> {
        if self.eat("!") {
            return Ok(i64::from(self.unary()? == 0));
        }
        if self.eat("-") {
            return Ok(-self.unary()?);
        }
        if self.eat("(") {
            let v = self.or()?;
            return if self.eat(")") {
                Ok(v)
            } else {
                Err("missing `)`".into())
            };
        }
        let Some(tok) = self.peek().map(str::to_string) else {
            return Err("expression ends early".into());
        };
        self.pos += 1;
        if tok == "defined" {
            let paren = self.eat("(");
            let name = self.peek().ok_or("`defined` without a name")?.to_string();
            self.pos += 1;
            if paren && !self.eat(")") {
                return Err("missing `)` after defined(".into());
            }
            return Ok(i64::from(self.defs.get(&name).is_some()));
        }
        if let Some(n) = parse_int(&tok) {
            return Ok(n);
        }
        if tok.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("bad number `{tok}`"));
        }
        Ok(self.defs.get(&tok).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Defines {
        Defines::from_autoconf(
            "#define CONFIG_MAX_NUM_NODES 1\n#define CONFIG_XAPIC 1\n#define CONFIG_NAME \"x\"\n",
        )
    }

    #[test]
    fn multicore_condition_is_false_on_a_single_node_kernel() {
        assert!(!defs().holds("CONFIG_MAX_NUM_NODES > 1").unwrap());
        let mut d = defs();
        d.set("CONFIG_MAX_NUM_NODES", 4);
        assert!(d.holds("CONFIG_MAX_NUM_NODES > 1").unwrap());
    }

    #[test]
    fn defined_sees_only_configured_symbols() {
        let d = defs();
        assert!(d.holds("defined(CONFIG_XAPIC)").unwrap());
        assert!(d.holds("defined CONFIG_NAME").unwrap());
        assert!(!d.holds("defined(CONFIG_VTX)").unwrap());
        assert!(
            d.holds("!defined(CONFIG_VTX) && (defined(CONFIG_XAPIC) || 0)")
                .unwrap()
        );
    }

    #[test]
    fn arithmetic_follows_c_precedence_for_enum_values() {
        let mut d = defs();
        d.set("CONFIG_NUM_PRIORITIES", 256);
        assert_eq!(d.eval("CONFIG_NUM_PRIORITIES - 1").unwrap(), 255);
        assert_eq!(d.eval("-1").unwrap(), -1);
        assert_eq!(d.eval("1 << 3 == 8").unwrap(), 1);
    }

    #[test]
    fn malformed_conditions_are_errors_not_guesses() {
        assert!(defs().holds("CONFIG_X ? 1 : 0").is_err());
        assert!(defs().holds("(1").is_err());
        assert!(defs().holds("1 2").is_err());
    }
}

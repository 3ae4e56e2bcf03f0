//! The command-line handling every `cargo xtask` subcommand shares.
//!
//! `-h` / `--help` anywhere before `--` answers with the command's usage and does nothing else
//! (exit status 0); an unknown option, an unexpected argument, a missing or malformed value is an
//! error that names the argument and prints the usage (exit status 2). Options may carry their
//! value as the next argument or after `=` (`--timeout 5`, `--timeout=5`); short flags may be
//! grouped (`-vv`); everything after `--` is left to the command (see [`Arg::Rest`]).
//!
//! A command's parser is one loop over [`Args::next`] that matches the options it knows and
//! hands everything else to [`Arg::unexpected`]; its entry point passes the result through
//! [`parse_or_exit`].

use std::fmt;
use std::process::ExitCode;
use std::str::FromStr;

/// Why a command line is not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgError {
    /// `-h` / `--help`: print the usage and stop, successfully.
    Help,
    /// An option the command does not have.
    Unknown(String),
    /// A positional argument the command does not take (or one too many).
    Unexpected(String),
    /// An option given without its value.
    MissingValue(String),
    /// A value that an option does not accept.
    BadValue {
        /// The option.
        option: String,
        /// The value given.
        value: String,
        /// What the option accepts.
        expected: String,
    },
    /// A value that an option does not accept, and why (for values with a grammar of their own).
    Invalid {
        /// The option.
        option: String,
        /// What is wrong with its value.
        why: String,
    },
    /// A value given to an option that takes none (`--bless=yes`).
    NoValueExpected(String),
    /// Arguments that are each fine but not together.
    Conflict(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Help => f.write_str("help requested"),
            Self::Unknown(o) => write!(f, "unknown option `{o}`"),
            Self::Unexpected(a) => write!(f, "unexpected argument `{a}`"),
            Self::MissingValue(o) => write!(f, "`{o}` needs a value"),
            Self::BadValue {
                option,
                value,
                expected,
            } => write!(f, "`{option}`: `{value}` is not {expected}"),
            Self::Invalid { option, why } => write!(f, "`{option}`: {why}"),
            Self::NoValueExpected(o) => write!(f, "`{o}` takes no value"),
            Self::Conflict(why) => f.write_str(why),
        }
    }
}

/// One argument, as [`Args::next`] classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg<'a> {
    /// A long option, `--name` (its `=value`, if any, is held for [`Args::value`]).
    Long(&'a str),
    /// One short flag, `-x` (also each letter of `-xyz`).
    Short(char),
    /// A positional argument.
    Pos(&'a str),
    /// Everything after `--`, for a command that passes arguments on (possibly empty).
    Rest(&'a [String]),
}

impl Arg<'_> {
    /// The error for an argument the command does not take.
    pub(crate) fn unexpected(self) -> ArgError {
        match self {
            Self::Long(o) => ArgError::Unknown(o.to_string()),
            Self::Short(c) => ArgError::Unknown(format!("-{c}")),
            Self::Pos(a) => ArgError::Unexpected(a.to_string()),
            Self::Rest(rest) => ArgError::Unexpected(format!("-- {}", rest.join(" "))),
        }
    }
}

/// A command line being read, argument by argument.
#[derive(Debug)]
pub(crate) struct Args<'a> {
    /// The arguments not yet read.
    rest: &'a [String],
    /// The `=value` of the long option just returned, until [`Args::value`] takes it.
    inline: Option<(&'a str, &'a str)>,
    /// The flags of a short group (`-vq`) not yet returned.
    shorts: &'a str,
}

impl<'a> Args<'a> {
    /// Starts reading `args` (the arguments after the subcommand's name). A `-h` or `--help`
    /// before `--` is [`ArgError::Help`] here, whatever else the line holds, so asking for help
    /// never starts any work.
    pub(crate) fn new(args: &'a [String]) -> Result<Self, ArgError> {
        if args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "-h" || a == "--help")
        {
            return Err(ArgError::Help);
        }
        Ok(Self {
            rest: args,
            inline: None,
            shorts: "",
        })
    }

    /// The next argument, `None` at the end. An `=value` the previous option did not take is an
    /// error here.
    pub(crate) fn next(&mut self) -> Result<Option<Arg<'a>>, ArgError> {
        if let Some((option, _)) = self.inline.take() {
            return Err(ArgError::NoValueExpected(option.to_string()));
        }
        if let Some(c) = self.shorts.chars().next() {
            self.shorts = &self.shorts[c.len_utf8()..];
            return Ok(Some(Arg::Short(c)));
        }
        let Some((first, rest)) = self.rest.split_first() else {
            return Ok(None);
        };
        self.rest = rest;
        let a = first.as_str();
        if a == "--" {
            return Ok(Some(Arg::Rest(std::mem::take(&mut self.rest))));
        }
        if a.starts_with("--") {
            return Ok(Some(match a.split_once('=') {
                Some((name, value)) => {
                    self.inline = Some((name, value));
                    Arg::Long(name)
                }
                None => Arg::Long(a),
            }));
        }
        if let Some(group) = a.strip_prefix('-').filter(|g| !g.is_empty()) {
            self.shorts = group;
            return self.next();
        }
        Ok(Some(Arg::Pos(a)))
    }

    /// The value of `option`, the option just returned: its `=value`, the rest of a short group
    /// (`-j2`), or the next argument (which must not be another long option or `--`).
    pub(crate) fn value(&mut self, option: &str) -> Result<&'a str, ArgError> {
        if let Some((_, value)) = self.inline.take() {
            return Ok(value);
        }
        if !self.shorts.is_empty() {
            return Ok(std::mem::take(&mut self.shorts));
        }
        match self.rest.split_first() {
            Some((v, rest)) if !v.starts_with("--") => {
                self.rest = rest;
                Ok(v)
            }
            _ => Err(ArgError::MissingValue(option.to_string())),
        }
    }

    /// The value of `option` parsed as a `T`; `expected` says what it must be when it is not one
    /// (e.g. "a number of seconds").
    pub(crate) fn parsed<T: FromStr>(
        &mut self,
        option: &str,
        expected: &str,
    ) -> Result<T, ArgError> {
        let v = self.value(option)?;
        v.parse().map_err(|_| ArgError::BadValue {
            option: option.to_string(),
            value: v.to_string(),
            expected: expected.to_string(),
        })
    }
}

/// What a command's entry point does with its parsed command line: the options to run with, or
/// (in `Err`) the exit status after printing the usage (for `--help`, on stdout) or the error and
/// the usage (on stderr).
pub(crate) fn parse_or_exit<T>(
    command: &str,
    usage: &str,
    parsed: Result<T, ArgError>,
) -> Result<T, ExitCode> {
    match parsed {
        Ok(v) => Ok(v),
        Err(ArgError::Help) => {
            println!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("xtask {command}: {e}\n{usage}");
            Err(ExitCode::from(2))
        }
    }
}

/// Test helper: a command line from string slices.
#[cfg(test)]
pub(crate) fn line(args: &[&str]) -> Vec<String> {
    args.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of `args`, or the first error.
    fn all(args: &[&str]) -> Result<Vec<String>, ArgError> {
        let args = line(args);
        let mut a = Args::new(&args)?;
        let mut out = Vec::new();
        while let Some(arg) = a.next()? {
            out.push(match arg {
                Arg::Long("--val") => format!("val={}", a.value("--val")?),
                Arg::Short('j') => format!("j={}", a.value("-j")?),
                Arg::Long(o) => o.to_string(),
                Arg::Short(c) => format!("-{c}"),
                Arg::Pos(p) => format!("pos {p}"),
                Arg::Rest(r) => format!("rest {}", r.join(" ")),
            });
        }
        Ok(out)
    }

    #[test]
    fn options_values_groups_and_rest() {
        assert_eq!(
            all(&[
                "--flag", "--val", "1", "--val=2", "-vq", "-j3", "-j", "4", "p", "--", "-x",
                "--help"
            ])
            .unwrap(),
            [
                "--flag",
                "val=1",
                "val=2",
                "-v",
                "-q",
                "j=3",
                "j=4",
                "pos p",
                "rest -x --help"
            ]
        );
        assert_eq!(all(&["--"]).unwrap(), ["rest "]);
        assert_eq!(all(&[]).unwrap(), Vec::<String>::new());
        // A lone `-` is an argument (standard input, by convention).
        assert_eq!(all(&["-"]).unwrap(), ["pos -"]);
    }

    #[test]
    fn help_wins_wherever_it_is_before_the_rest() {
        assert_eq!(all(&["--bogus", "--help"]), Err(ArgError::Help));
        assert_eq!(all(&["x", "-h"]), Err(ArgError::Help));
        assert_eq!(all(&["--val", "-h"]), Err(ArgError::Help));
    }

    #[test]
    fn malformed_values_are_errors() {
        assert_eq!(all(&["--val"]), Err(ArgError::MissingValue("--val".into())));
        assert_eq!(
            all(&["--val", "--flag"]),
            Err(ArgError::MissingValue("--val".into()))
        );
        assert_eq!(
            all(&["--flag=yes"]),
            Err(ArgError::NoValueExpected("--flag".into()))
        );
        let args = line(&["--n", "x"]);
        let mut a = Args::new(&args).unwrap();
        assert_eq!(a.next(), Ok(Some(Arg::Long("--n"))));
        let e = a.parsed::<u32>("--n", "a number").unwrap_err();
        assert_eq!(e.to_string(), "`--n`: `x` is not a number");
    }

    #[test]
    fn unexpected_names_the_argument() {
        assert_eq!(
            Arg::Long("--x").unexpected().to_string(),
            "unknown option `--x`"
        );
        assert_eq!(
            Arg::Short('z').unexpected().to_string(),
            "unknown option `-z`"
        );
        assert_eq!(
            Arg::Pos("p").unexpected().to_string(),
            "unexpected argument `p`"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(
            parse_or_exit::<()>("t", "usage", Err(ArgError::Help)),
            Err(ExitCode::SUCCESS)
        );
        assert_eq!(
            parse_or_exit::<()>("t", "usage", Err(ArgError::Unknown("--x".into()))),
            Err(ExitCode::from(2))
        );
        assert_eq!(parse_or_exit("t", "usage", Ok(7)), Ok(7));
    }
}

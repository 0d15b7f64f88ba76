//! Go's regexp syntax (RE2, Perl flags as regexp.Compile uses) on top of the regex crate:
//! the pattern is read with Go's rules and rewritten where the two disagree, so that a
//! pattern Go refuses is refused and one Go accepts means what it means in Go.
//!
//! Differences handled: stacked repetitions (`a**`, `a++`, `a{2}{3}`: errors in Go),
//! repeat counts over 1000, `{` that is not a repetition (a literal in Go), `\Q...\E`,
//! octal escapes, flags other than `imsU`, `\u`/`\U` escapes, punctuation escapes
//! (`\<` is a literal in Go, a word boundary in Rust), inside classes `&&`/`~~`/`--`
//! and `[` (literals and ranges in Go, set operations and nesting in Rust), unknown
//! `[:name:]` classes, nested repeats expanding more than 1000 times (`(a{500}){3}`)
//! and the nesting limit (1000 in Go).

const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "word",
    "xdigit",
];

struct P {
    c: Vec<char>,
    i: usize,
    out: String,
    /// open groups (the whole pattern first), for Go's nested repeat limit
    groups: Vec<Group>,
}

/// Go's repeatIsValid in summary: the largest product of repeat counts on a path from
/// the group down to a leaf, over the finished items and the last one (a repeat
/// applies to the last).
#[derive(Clone, Copy, Default)]
struct Group {
    done: u64,
    last: u64,
}

/// regexp/syntax: a repetition may not expand its innermost part more than 1000 times.
const MAX_REPEAT_PRODUCT: u64 = 1000;

type R = Result<(), ()>;

impl P {
    fn peek(&self, k: usize) -> Option<char> {
        self.c.get(self.i + k).copied()
    }

    fn lit(&mut self, ch: char) {
        self.out.push_str(&regex::escape(&ch.to_string()));
    }

    fn group(&mut self) -> &mut Group {
        self.groups.last_mut().expect("the pattern's own group")
    }

    /// A new item (literal, class, group) starts: the previous one is finished.
    fn atom(&mut self, product: u64) {
        let g = self.group();
        g.done = g.done.max(g.last);
        g.last = product;
    }

    fn close_group(&mut self) {
        if self.groups.len() > 1 {
            let g = self.groups.pop().expect("checked");
            self.atom(g.done.max(g.last).max(1));
        }
    }

    /// Go's repeat(): counts over 1000 along nested repeats (`(a{500}){3}`) are an
    /// `invalid repeat count`; checked when min or max is at least 2, like Go.
    fn repeat(&mut self, min: i64, max: i64) -> R {
        let g = self.group();
        let inner = g.last.max(1);
        g.last = match if max < 0 { min } else { max } {
            // x{0} is never expanded: what it holds is not checked
            _ if max == 0 => 1,
            m if m >= 1 => (m as u64).saturating_mul(inner),
            _ => inner,
        };
        if (min >= 2 || max >= 2) && g.last > MAX_REPEAT_PRODUCT {
            return Err(());
        }
        Ok(())
    }

    /// After a backslash (consumed); `class` = inside a character class. Returns whether
    /// the escape was a class (\d, \pL, ...).
    fn escape(&mut self, class: bool) -> Result<bool, ()> {
        let c = self.peek(0).ok_or(())?;
        self.i += 1;
        match c {
            'Q' if !class => {
                // literal text up to \E (or the end)
                while let Some(ch) = self.peek(0) {
                    if ch == '\\' && self.peek(1) == Some('E') {
                        self.i += 2;
                        break;
                    }
                    self.lit(ch);
                    self.i += 1;
                }
                Ok(false)
            }
            '1'..='7' | '0' => {
                if c != '0' && !matches!(self.peek(0), Some('0'..='7')) {
                    return Err(()); // a backreference
                }
                let mut v = c as u32 - '0' as u32;
                for _ in 1..3 {
                    match self.peek(0) {
                        Some(d @ '0'..='7') => {
                            v = v * 8 + (d as u32 - '0' as u32);
                            self.i += 1;
                        }
                        _ => break,
                    }
                }
                self.out.push_str(&format!("\\x{{{:x}}}", v));
                Ok(false)
            }
            'a' | 'f' | 't' | 'n' | 'r' | 'v' => {
                self.out.push('\\');
                self.out.push(c);
                Ok(false)
            }
            'x' => {
                self.out.push_str("\\x");
                Ok(false)
            }
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.out.push('\\');
                self.out.push(c);
                Ok(true)
            }
            'p' | 'P' => {
                self.out.push('\\');
                self.out.push(c);
                Ok(true)
            }
            'b' | 'B' | 'A' | 'z' if !class => {
                self.out.push('\\');
                self.out.push(c);
                Ok(false)
            }
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => {
                self.lit(c);
                Ok(false)
            }
            _ => Err(()),
        }
    }

    /// Go's parseRepeat at `{`: Some((min, max)) and the length, None = not a repetition.
    fn repeat_at(&self) -> Option<(i64, i64, usize)> {
        let rest: String = self.c[self.i..].iter().collect();
        let body = rest.strip_prefix('{')?;
        let end = body.find('}')?;
        let inner = &body[..end];
        let num = |s: &str| -> Option<i64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() >= 2 && s.starts_with('0')) {
                return None;
            }
            if s.len() > 8 {
                return Some(i64::MAX);
            }
            s.parse().ok()
        };
        let (min, max) = match inner.split_once(',') {
            None => {
                let n = num(inner)?;
                (n, n)
            }
            Some((a, "")) => (num(a)?, -1),
            Some((a, b)) => (num(a)?, num(b)?),
        };
        Some((min, max, end + 2))
    }

    fn class(&mut self) -> R {
        // at '[' (consumed); Go's parseClass: items are POSIX classes, Perl/Unicode class
        // escapes, or a char with an optional `-hi` (not before the closing ']'); every
        // char is written as \x{..} so Rust reads no set operation or nesting into it
        self.out.push('[');
        if self.peek(0) == Some('^') {
            self.out.push('^');
            self.i += 1;
        }
        let mut first = true;
        loop {
            let c = self.peek(0).ok_or(())?;
            if c == ']' && !first {
                self.i += 1;
                self.out.push(']');
                return Ok(());
            }
            first = false;
            if c == '[' && self.peek(1) == Some(':') {
                let rest: String = self.c[self.i + 2..].iter().collect();
                if let Some(end) = rest.find(":]") {
                    let name = &rest[..end];
                    if !POSIX.contains(&name.strip_prefix('^').unwrap_or(name)) {
                        return Err(());
                    }
                    self.out.push_str(&format!("[:{}:]", name));
                    self.i += 2 + name.chars().count() + 2;
                    continue;
                }
            }
            if c == '\\' && matches!(self.peek(1), Some('d' | 'D' | 's' | 'S' | 'w' | 'W' | 'p' | 'P')) {
                self.i += 1;
                self.escape(true)?;
                // \pL or \p{Name}: the name as written
                if self.out.ends_with("\\p") || self.out.ends_with("\\P") {
                    let end = match self.peek(0) {
                        Some('{') => self.c[self.i..].iter().position(|&ch| ch == '}').ok_or(())? + 1,
                        Some(_) => 1,
                        None => return Err(()),
                    };
                    self.out.extend(&self.c[self.i..self.i + end]);
                    self.i += end;
                }
                continue;
            }
            let lo = self.class_char()?;
            let mut hi = lo;
            if self.peek(0) == Some('-') && self.peek(1).is_some_and(|n| n != ']') {
                self.i += 1;
                hi = self.class_char()?;
                if hi < lo {
                    return Err(()); // invalid character class range
                }
            }
            self.out.push_str(&format!("\\x{{{:x}}}", lo as u32));
            if hi != lo {
                self.out.push_str(&format!("-\\x{{{:x}}}", hi as u32));
            }
        }
    }

    /// Go's parseClassChar: one char, or an escape standing for one (parseEscape).
    fn class_char(&mut self) -> Result<char, ()> {
        let c = self.peek(0).ok_or(())?;
        self.i += 1;
        if c != '\\' {
            return Ok(c);
        }
        let e = self.peek(0).ok_or(())?;
        self.i += 1;
        let v = match e {
            '1'..='7' if !matches!(self.peek(0), Some('0'..='7')) => return Err(()),
            '0'..='7' => {
                let mut v = e as u32 - '0' as u32;
                for _ in 1..3 {
                    match self.peek(0) {
                        Some(d @ '0'..='7') => {
                            v = v * 8 + (d as u32 - '0' as u32);
                            self.i += 1;
                        }
                        _ => break,
                    }
                }
                v
            }
            'x' if self.peek(0) == Some('{') => {
                self.i += 1;
                let mut v: u32 = 0;
                let mut digits = 0;
                loop {
                    let d = self.peek(0).ok_or(())?;
                    self.i += 1;
                    if d == '}' && digits > 0 {
                        break;
                    }
                    v = v.checked_mul(16).ok_or(())? + d.to_digit(16).ok_or(())?;
                    digits += 1;
                    if v > 0x10FFFF {
                        return Err(());
                    }
                }
                v
            }
            'x' => {
                let h = self.peek(0).and_then(|d| d.to_digit(16)).ok_or(())?;
                let l = self.peek(1).and_then(|d| d.to_digit(16)).ok_or(())?;
                self.i += 2;
                h * 16 + l
            }
            'a' => 7,
            'f' => 12,
            't' => 9,
            'n' => 10,
            'r' => 13,
            'v' => 11,
            e if e.is_ascii() && !e.is_ascii_alphanumeric() => e as u32,
            _ => return Err(()),
        };
        char::from_u32(v).ok_or(())
    }

    fn run(&mut self) -> R {
        let mut after_repeat = false;
        while let Some(c) = self.peek(0) {
            let mut repeat = false;
            match c {
                '\\' => {
                    self.i += 1;
                    self.atom(1);
                    self.escape(false)?;
                }
                '[' => {
                    self.i += 1;
                    self.atom(1);
                    self.class()?;
                }
                '(' if self.peek(1) == Some('?') => {
                    self.i += 2;
                    self.out.push_str("(?");
                    if self.peek(0) == Some('P') || self.peek(0) == Some('<') {
                        self.atom(1);
                        self.groups.push(Group::default());
                        // named group: the name up to '>' (checked by the regex crate)
                        while let Some(ch) = self.peek(0) {
                            self.out.push(ch);
                            self.i += 1;
                            if ch == '>' {
                                break;
                            }
                        }
                    } else {
                        loop {
                            let ch = self.peek(0).ok_or(())?;
                            self.i += 1;
                            self.out.push(ch);
                            match ch {
                                ':' => {
                                    self.atom(1);
                                    self.groups.push(Group::default());
                                    break;
                                }
                                ')' => break,
                                'i' | 'm' | 's' | 'U' | '-' => {}
                                _ => return Err(()),
                            }
                        }
                    }
                }
                '*' | '+' | '?' => {
                    if after_repeat {
                        return Err(()); // invalid nested repetition operator
                    }
                    self.i += 1;
                    self.out.push(c);
                    if self.peek(0) == Some('?') {
                        self.i += 1;
                        self.out.push('?');
                    }
                    repeat = true;
                }
                '{' => match self.repeat_at() {
                    Some((min, max, len)) => {
                        if after_repeat || min > 1000 || max > 1000 || (max >= 0 && max < min) {
                            return Err(()); // nested repetition / invalid repeat count
                        }
                        self.repeat(min, max)?;
                        let s: String = self.c[self.i..self.i + len].iter().collect();
                        self.out.push_str(&s);
                        self.i += len;
                        if self.peek(0) == Some('?') {
                            self.i += 1;
                            self.out.push('?');
                        }
                        repeat = true;
                    }
                    None => {
                        self.i += 1;
                        self.atom(1);
                        self.out.push_str("\\{");
                    }
                },
                '}' => {
                    self.i += 1;
                    self.atom(1);
                    self.out.push_str("\\}");
                }
                _ => {
                    self.i += 1;
                    match c {
                        '(' => {
                            self.atom(1);
                            self.groups.push(Group::default());
                        }
                        ')' => self.close_group(),
                        '|' => self.atom(0),
                        _ => self.atom(1),
                    }
                    self.out.push(c);
                }
            }
            after_repeat = repeat;
        }
        Ok(())
    }
}

/// The pattern rewritten for the regex crate, or Err when Go's regexp refuses it.
fn translate(pat: &str) -> Result<String, ()> {
    let mut p = P {
        c: pat.chars().collect(),
        i: 0,
        out: String::new(),
        groups: vec![Group::default()],
    };
    p.run()?;
    Ok(p.out)
}

/// regexp.Compile: Some(regex) with Go's meaning, None when Go refuses the pattern.
pub fn compile(pat: &str) -> Option<regex::Regex> {
    let t = translate(pat).ok()?;
    regex::RegexBuilder::new(&t).nest_limit(1000).build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, accepted by Go's regexp.Compile, names it matches, names it doesn't)
    #[test]
    fn go_syntax() {
        #[rustfmt::skip]
        let cases: &[(&str, bool, &[&str], &[&str])] = &[
            ("^cam[0-9]+$", true, &["cam1"], &["xcam1"]),
            ("a**", false, &[], &[]),
            ("a++", false, &[], &[]),
            ("a*?", true, &["b"], &[]),
            ("a{2}{3}", false, &[], &[]),
            ("a{2}+", false, &[], &[]),
            ("a{2}?", true, &["aa"], &["a"]),
            ("a{1001}", false, &[], &[]),
            ("a{1000}", true, &[], &["a"]),
            ("a{3,2}", false, &[], &[]),
            // not a repetition: literal braces in Go
            ("^a{,5}$", true, &["a{,5}"], &["a"]),
            ("^a{$", true, &["a{"], &[]),
            ("^{$", true, &["{"], &[]),
            ("^a{01}$", true, &["a{01}"], &["a"]),
            (r"^a\b{start}$", true, &["a{start}"], &["a"]),
            (r"^\Qa.b\E$", true, &["a.b"], &["axb"]),
            (r"^\Qa.b$", true, &["a.b$"], &["a.b"]),
            ("(?x)a b", false, &[], &[]),
            ("(?u)a", false, &[], &[]),
            ("(?i)CAM", true, &["cam"], &[]),
            ("(?i:C)am", true, &["cam"], &[]),
            ("(?s-m:a)", true, &["a"], &[]),
            (r"^\<a\>$", true, &["<a>"], &["a"]),
            (r"^a\_b$", true, &["a_b"], &[]),
            (r"^\141$", true, &["a"], &[]),
            (r"\1", false, &[], &[]),
            (r"\8", false, &[], &[]),
            (r"\u0061", false, &[], &[]),
            (r"\Z", false, &[], &[]),
            ("^[a&&b]$", true, &["&", "a"], &["ab"]),
            ("^[[a]]$", true, &["[]", "a]"], &["a"]),
            ("^[a~~b]$", true, &["~"], &[]),
            (r"^[\d-z]$", true, &["-", "z", "5"], &["y"]),
            ("^[[:alpha:]]+$", true, &["abc"], &["a1"]),
            ("[[:foo:]]", false, &[], &[]),
            ("^[]a]$", true, &["]"], &["b"]),
            ("(cam", false, &[], &[]),
            ("*", false, &[], &[]),
            (r"^a\.b$", true, &["a.b"], &["axb"]),
            // Go's repeatIsValid: nested repeats may not expand more than 1000 times
            ("(a{500}){3}", false, &[], &[]),
            ("(a{500}){2}", true, &[], &["a"]),
            ("((a{2}){10}){50}", true, &[], &[]),
            ("((a{2}){10}){51}", false, &[], &[]),
            ("(?:a{600}|b){2}", false, &[], &[]),
            ("(a{600}){1}", true, &[], &[]),
            ("((a{600}){1}){2}", false, &[], &[]),
            ("^(a{600}){0}(b{600}){0}x{2}$", true, &["xx"], &["x"]),
            ("(a{600}b)*c{2}", true, &[], &[]),
            ("(a{600}){2,}", false, &[], &[]),
            ("(a{1000}){0,1}", true, &[], &[]),
            // `--` in a class: a range starting or ending at '-' in Go
            ("^[!--]$", true, &["!", ",", "-"], &["."]),
            ("^[--/]$", true, &["-", ".", "/"], &["a"]),
            ("[a--]", false, &[], &[]),
            ("^[a-z--]$", true, &["-", "q"], &["."]),
            (r"^[\d--/]$", true, &["5", "-", ".", "/"], &["a"]),
            (r"^[a-\d]$", false, &[], &[]),
            (r"^[\x41-\x{43}]$", true, &["A", "C"], &["D"]),
            (r"^[\pL\p{Greek}]$", true, &["a", "α"], &["1"]),
            ("^[[:foo]$", true, &["[", ":", "f"], &["x"]),
            ("(?i)^[a-c]$", true, &["B"], &["d"]),
        ];
        for (pat, ok, yes, no) in cases {
            let r = compile(pat);
            assert_eq!(r.is_some(), *ok, "{}: {:?}", pat, translate(pat));
            if let Some(r) = r {
                for y in *yes {
                    assert!(r.is_match(y), "{} should match {:?} ({:?})", pat, y, translate(pat));
                }
                for n in *no {
                    assert!(
                        !r.is_match(n),
                        "{} should not match {:?} ({:?})",
                        pat,
                        n,
                        translate(pat)
                    );
                }
            }
        }
        // hostile patterns: never a panic (a small deterministic fuzz over metacharacters)
        let alphabet: Vec<char> = r"()[]{}\^$.|*+?-:,0123456789aAxpPdQE&~!<>=α".chars().collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            let len = (seed >> 59) as usize + 1;
            let pat: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = compile(&pat);
        }
        // Go nests up to 1000 levels; the regex crate's default limit is lower
        let deep = format!("{}a{}", "(".repeat(300), ")".repeat(300));
        assert!(compile(&deep).is_some());
    }
}

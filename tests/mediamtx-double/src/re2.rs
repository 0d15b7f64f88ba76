//! Go's regexp syntax (RE2, Perl flags as regexp.Compile uses) on top of the regex crate:
//! the pattern is read with Go's rules and rewritten where the two disagree, so that a
//! pattern Go refuses is refused and one Go accepts means what it means in Go.
//!
//! Differences handled: stacked repetitions (`a**`, `a++`, `a{2}{3}`: errors in Go),
//! repeat counts over 1000, `{` that is not a repetition (a literal in Go), `\Q...\E`,
//! octal escapes, flags other than `imsU`, `\u`/`\U` escapes, punctuation escapes
//! (`\<` is a literal in Go, a word boundary in Rust), inside classes `&&`/`~~`/`--`
//! and `[` (literals and ranges in Go, set operations and nesting in Rust), unknown
//! `[:name:]` classes, nested repeats expanding more than 1000 times (`(a{500}){3}`),
//! the nesting limit (1000 in Go) and Go's program size limit (`expression too large`).

const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper", "word",
    "xdigit",
];

struct P {
    c: Vec<char>,
    i: usize,
    out: String,
    /// open groups (the whole pattern first), for Go's nested repeat and size limits
    groups: Vec<Group>,
    /// Go's size check, see MAX_SIZE: the largest size of a finished part, parse nodes
    /// (approximately as Go allocates them), product of all counted repeats
    max_size: u64,
    nodes: u64,
    repeats: u64,
}

/// An open group. Go's repeatIsValid in summary: the largest product of repeat counts
/// on a path from the group down to a leaf, over the finished items (`done`) and the
/// last one (a repeat applies to the last). Go's calcSize: see Size.
#[derive(Clone, Copy, Default)]
struct Group {
    done: u64,
    last: u64,
    size: Size,
}

/// Go's calcSize (regexp/syntax parse.go) of a group being read: a capture costs 2 more
/// than its contents, an alternation its alternatives plus one per `|`, a sequence the
/// sum of its items, a literal character, class, `.` or assertion 1. Consecutive
/// alternatives of one character or class count as one (Go merges them into a class);
/// Go also factors common prefixes out of alternatives, which is not modelled, so an
/// alternation of such branches counts a bit more here than in Go.
#[derive(Clone, Copy, Default)]
struct Size {
    capture: bool,
    /// finished alternatives: summed sizes, how many, whether the last was one character
    alts: u64,
    n_alts: u64,
    alt_char: bool,
    /// the current alternative: its finished items, its last item (what a repeat
    /// applies to), how many items, whether the last is one character
    seq: u64,
    item: u64,
    items: u64,
    item_char: bool,
    /// literal characters in a row: Go keeps them in one node
    lit_run: u64,
}

/// What one item of a pattern is, for Go's size check.
#[derive(Clone, Copy, PartialEq)]
enum Item {
    /// a literal character
    Lit,
    /// one character of a set: a class, `\d`, `.`
    Char,
    /// an assertion: `^`, `$`, `\b`, ...
    Op,
}

/// Go's maxSize: at most 128 MB of compiled instructions of 40 bytes (3355443), else
/// `expression too large` (checked during parsing since Go 1.19, also in Go 1.26 that
/// MediaMTX v1.20.1 is built with). Go starts measuring only once its parse nodes times
/// the product of all counted repeats reach this limit, so a long run of literal
/// characters (one node in Go) under `{1000}` passes; the double counts nodes
/// approximately (one per item, group or repeat, two per run of literal characters).
const MAX_SIZE: u64 = (128 << 20) / 40;

/// Go's calcSize of x{min,max} when x has size `sub` (max -1: no upper bound; `*` is
/// {0,}, `+` {1,}, `?` {0,1}).
fn repeat_size(min: i64, max: i64, sub: u64) -> u64 {
    let (min, max) = (min.max(0) as u64, max);
    let size = match max {
        m if m < 0 && min == 0 => sub.saturating_add(2),
        m if m < 0 => min.saturating_mul(sub).saturating_add(1),
        m => (m as u64)
            .saturating_mul(sub)
            .saturating_add((m as u64).saturating_sub(min)),
    };
    size.max(1)
}

impl Size {
    fn item(&mut self, size: u64, one_char: bool) {
        self.seq = self.seq.saturating_add(self.item);
        self.item = size;
        self.items += 1;
        self.item_char = one_char;
    }

    /// The current alternative ends (at `|` or `)`); returns its size.
    fn bar(&mut self) -> u64 {
        let size = self.seq.saturating_add(self.item).max(1);
        let one_char = self.items == 1 && self.item_char;
        if !(one_char && self.alt_char) {
            self.alts = self.alts.saturating_add(size);
            self.n_alts += 1;
        }
        self.alt_char = one_char;
        *self = Size {
            capture: self.capture,
            alts: self.alts,
            n_alts: self.n_alts,
            alt_char: self.alt_char,
            ..Size::default()
        };
        size
    }

    /// The group ends: its size and whether it is one character.
    fn close(mut self) -> (u64, bool) {
        self.bar();
        let size = self.alts.saturating_add(self.n_alts.saturating_sub(1)).max(1);
        if self.capture {
            (size.saturating_add(2), false)
        } else {
            (size, self.n_alts == 1 && self.alt_char)
        }
    }
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

    /// A new item (literal, class, assertion) starts: the previous one is finished.
    fn atom(&mut self, item: Item) {
        let g = self.group();
        g.done = g.done.max(g.last);
        g.last = 1;
        g.size.item(1, item != Item::Op);
        g.size.lit_run = if item == Item::Lit { g.size.lit_run + 1 } else { 0 };
        let new_node = g.size.lit_run <= 2;
        self.nodes += new_node as u64;
    }

    fn open_group(&mut self, capture: bool) {
        self.nodes += 1;
        let mut g = Group::default();
        g.size.capture = capture;
        self.groups.push(g);
    }

    fn close_group(&mut self) {
        if self.groups.len() > 1 {
            let g = self.groups.pop().expect("checked");
            let (size, one_char) = g.size.close();
            self.sized(size);
            let p = self.group();
            p.done = p.done.max(p.last);
            p.last = g.done.max(g.last).max(1);
            p.size.item(size, one_char);
            p.size.lit_run = 0;
        }
    }

    /// `|`: the alternative ends.
    fn bar(&mut self) {
        let g = self.group();
        g.done = g.done.max(g.last);
        g.last = 0;
        let size = g.size.bar();
        self.sized(size);
    }

    /// A part of `size` is finished (Go checks every node it builds once measuring).
    fn sized(&mut self, size: u64) {
        self.nodes += 1;
        self.max_size = self.max_size.max(size);
    }

    /// Go's checkSize over the whole pattern (see MAX_SIZE).
    fn too_large(&mut self) -> bool {
        let (size, _) = self.groups[0].size.close();
        self.sized(size);
        self.max_size > MAX_SIZE && self.nodes >= MAX_SIZE / self.repeats.max(1)
    }

    /// A repeat applies to the last item: its size (all repeats) and Go's product of
    /// counted ones (`{n,m}`: m, else n; only for `counted`).
    fn repeat_sized(&mut self, min: i64, max: i64, counted: bool) {
        let g = self.group();
        let size = repeat_size(min, max, g.size.item);
        g.size.item = size;
        g.size.item_char = false;
        g.size.lit_run = 0;
        self.sized(size);
        if counted {
            let n = if max < 0 { min } else { max }.max(1) as u64;
            self.repeats = self.repeats.max(1).saturating_mul(n).min(MAX_SIZE);
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

    /// After a backslash (consumed); `class` = inside a character class. Returns what
    /// the escape is and how many items it stands for (`\Q...\E`: its characters).
    fn escape(&mut self, class: bool) -> Result<(Item, usize), ()> {
        let c = self.peek(0).ok_or(())?;
        self.i += 1;
        match c {
            'Q' if !class => {
                // literal text up to \E (or the end)
                let mut n = 0;
                while let Some(ch) = self.peek(0) {
                    if ch == '\\' && self.peek(1) == Some('E') {
                        self.i += 2;
                        break;
                    }
                    self.lit(ch);
                    self.i += 1;
                    n += 1;
                }
                Ok((Item::Lit, n))
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
                Ok((Item::Lit, 1))
            }
            'a' | 'f' | 't' | 'n' | 'r' | 'v' => {
                self.out.push('\\');
                self.out.push(c);
                Ok((Item::Lit, 1))
            }
            'x' => {
                // read whole (`\x{41}` is one character, not `\x` and a repeat)
                self.i -= 2;
                let ch = self.class_char()?;
                self.lit(ch);
                Ok((Item::Lit, 1))
            }
            'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'p' | 'P' => {
                self.out.push('\\');
                self.out.push(c);
                Ok((Item::Char, 1))
            }
            'b' | 'B' | 'A' | 'z' if !class => {
                self.out.push('\\');
                self.out.push(c);
                Ok((Item::Op, 1))
            }
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => {
                self.lit(c);
                Ok((Item::Lit, 1))
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
                    let (item, n) = self.escape(false)?;
                    for _ in 0..n.max(1) {
                        self.atom(item);
                    }
                }
                '[' => {
                    self.i += 1;
                    self.atom(Item::Char);
                    self.class()?;
                }
                '(' if self.peek(1) == Some('?') => {
                    self.i += 2;
                    self.out.push_str("(?");
                    if self.peek(0) == Some('P') || self.peek(0) == Some('<') {
                        self.open_group(true);
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
                                    self.open_group(false);
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
                    let (min, max) = match c {
                        '*' => (0, -1),
                        '+' => (1, -1),
                        _ => (0, 1),
                    };
                    self.repeat_sized(min, max, false);
                    repeat = true;
                }
                '{' => match self.repeat_at() {
                    Some((min, max, len)) => {
                        if after_repeat || min > 1000 || max > 1000 || (max >= 0 && max < min) {
                            return Err(()); // nested repetition / invalid repeat count
                        }
                        self.repeat(min, max)?;
                        self.repeat_sized(min, max, true);
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
                        self.atom(Item::Lit);
                        self.out.push_str("\\{");
                    }
                },
                '}' => {
                    self.i += 1;
                    self.atom(Item::Lit);
                    self.out.push_str("\\}");
                }
                _ => {
                    self.i += 1;
                    match c {
                        '(' => self.open_group(true),
                        ')' => self.close_group(),
                        '|' => self.bar(),
                        '^' | '$' => self.atom(Item::Op),
                        '.' => self.atom(Item::Char),
                        _ => self.atom(Item::Lit),
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
        max_size: 0,
        nodes: 0,
        repeats: 1,
    };
    p.run()?;
    if p.too_large() {
        return Err(()); // expression too large
    }
    Ok(p.out)
}

/// regexp.Compile: Some(regex) with Go's meaning, None when Go refuses the pattern. The
/// regex crate's default size limit (10 MiB of compiled program) stays as the double's
/// bound on memory: it also refuses large patterns that pass Go's limit (e.g. 500 literal
/// characters under `{1000}`, or far fewer Unicode classes such as `\pL`).
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
            // \x{..} is one character (not \x and a repeat count)
            (r"^(\x{41}){30}$", true, &["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"], &["A"]),
            (r"^\x41\x{42}$", true, &["AB"], &[]),
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

    /// Go's program size limit (`expression too large`, 3355443 instructions by Go's
    /// calcSize): (pattern, passes Go's check). Checked on translate(): the regex crate's
    /// own size limit refuses most of these patterns anyway (see compile).
    #[test]
    fn go_size_limit() {
        let cls = |n: usize| "[ab]".repeat(n);
        #[rustfmt::skip]
        let cases: Vec<(String, bool)> = vec![
            // (2 + n) * 1000 against 3355443
            (format!("^({}){{1000}}$", cls(3353)), true),
            (format!("^({}){{1000}}$", cls(3354)), false),
            (format!("^(?:{}){{1000}}$", cls(3355)), true),
            (format!("^(?:{}){{1000}}$", cls(3356)), false),
            (format!("^(?:{}){{999,1000}}$", cls(3355)), true),
            (format!("^(?:{}){{1000,}}$", cls(3355)), true),
            (format!("^(?:{}){{1000,}}$", cls(3356)), false),
            // measured where built: a part over the limit fails even under {0}
            (format!("^(?:(?:{}){{1000}}){{0}}$", cls(3400)), false),
            (format!("^(?:(?:{}){{1000}}){{0}}$", cls(3000)), true),
            // Go measures only once nodes x repeats reach the limit: a run of literal
            // characters is one node
            (format!("^(?:{}){{1000}}$", "a".repeat(4000)), true),
            (format!("^(?:{}{}){{1000}}$", "a".repeat(4000), cls(3400)), false),
            // single characters in alternatives are merged into one class by Go
            (format!("^(?:{}b){{1000}}$", "a|".repeat(2000)), true),
            // alternatives with different leading classes are not factored by Go
            (format!("^(?:{}bc){{1000}}$", "[ab]c|[cd]c|".repeat(850)), false),
        ];
        for (pat, ok) in &cases {
            assert_eq!(translate(pat).is_ok(), *ok, "{}...", &pat[..40]);
        }
    }
}

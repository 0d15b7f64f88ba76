//! The syntax check of Go's encoding/json (scanner.go, run by json.Unmarshal before
//! decoding), for its exact error texts: `invalid character 'x' after object key`,
//! `unexpected end of JSON input`, ...

/// Go's quoteChar: the byte as a rune (Latin-1), quoted like strconv.Quote.
fn quote_char(c: u8) -> String {
    let mut out = String::from("'");
    crate::util::go_escape(c as char, '\'', &mut out);
    out.push('\'');
    out
}

fn invalid(c: u8, ctx: &str) -> String {
    format!("invalid character {} {}", quote_char(c), ctx)
}

const EOF: &str = "unexpected end of JSON input";

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.i += 1;
        }
    }
    fn next(&mut self) -> Result<u8, String> {
        let c = self.peek().ok_or_else(|| EOF.to_string())?;
        self.i += 1;
        Ok(c)
    }

    /// stateBeginValue (whitespace skipped by the caller)
    fn value(&mut self) -> Result<(), String> {
        let c = self.next()?;
        match c {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string(),
            b'-' => {
                let c = self.next()?;
                match c {
                    b'0' => self.number_after_int(),
                    b'1'..=b'9' => self.number_digits(),
                    _ => Err(invalid(c, "in numeric literal")),
                }
            }
            b'0' => self.number_after_int(),
            b'1'..=b'9' => self.number_digits(),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => Err(invalid(c, "looking for beginning of value")),
        }
    }

    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > 10000 {
            return Err("exceeded max depth".into());
        }
        Ok(())
    }

    fn object(&mut self) -> Result<(), String> {
        self.nest()?;
        self.skip_ws();
        let c = self.next()?;
        if c == b'}' {
            self.depth -= 1;
            return Ok(());
        }
        let mut c = c;
        loop {
            if c != b'"' {
                return Err(invalid(c, "looking for beginning of object key string"));
            }
            self.string()?;
            self.skip_ws();
            let d = self.next()?;
            if d != b':' {
                return Err(invalid(d, "after object key"));
            }
            self.skip_ws();
            self.value()?;
            self.skip_ws();
            let d = self.next()?;
            match d {
                b',' => {
                    self.skip_ws();
                    c = self.next()?;
                }
                b'}' => {
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(invalid(d, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Result<(), String> {
        self.nest()?;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            self.value()?;
            self.skip_ws();
            let d = self.next()?;
            match d {
                b',' => {}
                b']' => {
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(invalid(d, "after array element")),
            }
        }
    }

    /// after the opening quote
    fn string(&mut self) -> Result<(), String> {
        loop {
            let c = self.next()?;
            match c {
                b'"' => return Ok(()),
                b'\\' => {
                    let e = self.next()?;
                    match e {
                        b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {}
                        b'u' => {
                            for _ in 0..4 {
                                let h = self.next()?;
                                if !h.is_ascii_hexdigit() {
                                    return Err(invalid(h, "in \\u hexadecimal character escape"));
                                }
                            }
                        }
                        _ => return Err(invalid(e, "in string escape code")),
                    }
                }
                c if c < 0x20 => return Err(invalid(c, "in string literal")),
                _ => {}
            }
        }
    }

    /// state1: more digits of the integer part
    fn number_digits(&mut self) -> Result<(), String> {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.number_after_int()
    }

    /// state0: after the integer part
    fn number_after_int(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'.') => {
                self.i += 1;
                let c = self.next()?;
                if !c.is_ascii_digit() {
                    return Err(invalid(c, "after decimal point in numeric literal"));
                }
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.i += 1;
                }
                self.exponent()
            }
            _ => self.exponent(),
        }
    }

    fn exponent(&mut self) -> Result<(), String> {
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            let mut c = self.next()?;
            if c == b'+' || c == b'-' {
                c = self.next()?;
            }
            if !c.is_ascii_digit() {
                return Err(invalid(c, "in exponent of numeric literal"));
            }
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
        }
        Ok(())
    }

    /// after the first letter of true/false/null
    fn literal(&mut self, word: &str) -> Result<(), String> {
        for &want in &word.as_bytes()[1..] {
            let c = self.next()?;
            if c != want {
                return Err(invalid(
                    c,
                    &format!("in literal {} (expecting '{}')", word, want as char),
                ));
            }
        }
        Ok(())
    }
}

/// encoding/json checkValid: Ok if `b` is one valid JSON value (surrounded by whitespace).
pub fn check_valid(b: &[u8]) -> Result<(), String> {
    let mut s = Scan { b, i: 0, depth: 0 };
    s.skip_ws();
    s.value()?;
    s.skip_ws();
    if let Some(c) = s.peek() {
        return Err(invalid(c, "after top-level value"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases of Go's encoding/json decode_test.go and scanner_test.go, plus one per
    /// scanner state.
    #[test]
    fn go_syntax_errors() {
        let cases: &[(&str, &str)] = &[
            (r#"{"X": "foo", "Y"}"#, "invalid character '}' after object key"),
            (
                r#"{"X": "foo" "Y": "bar"}"#,
                "invalid character '\"' after object key:value pair",
            ),
            ("[1, 2, 3+]", "invalid character '+' after array element"),
            (r#"{"X":12x}"#, "invalid character 'x' after object key:value pair"),
            ("[2, 3", EOF),
            (r#"{"F3": -}"#, "invalid character '}' in numeric literal"),
            ("\x01 42", "invalid character '\\x01' looking for beginning of value"),
            (" 42 \x01", "invalid character '\\x01' after top-level value"),
            (" false \x01", "invalid character '\\x01' after top-level value"),
            (
                "\x01 \"string\"",
                "invalid character '\\x01' looking for beginning of value",
            ),
            ("", EOF),
            ("   ", EOF),
            ("{", EOF),
            (r#"{"a""#, EOF),
            (r#"{"a":"#, EOF),
            ("1.", EOF),
            ("-", EOF),
            ("x", "invalid character 'x' looking for beginning of value"),
            ("'a'", "invalid character '\\'' looking for beginning of value"),
            (
                "{,}",
                "invalid character ',' looking for beginning of object key string",
            ),
            (
                "{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
            (
                "{a:1}",
                "invalid character 'a' looking for beginning of object key string",
            ),
            ("[1,]", "invalid character ']' looking for beginning of value"),
            ("[1 2]", "invalid character '2' after array element"),
            ("01", "invalid character '1' after top-level value"),
            ("1.x", "invalid character 'x' after decimal point in numeric literal"),
            ("1e+", EOF),
            ("1ex", "invalid character 'x' in exponent of numeric literal"),
            ("-x", "invalid character 'x' in numeric literal"),
            ("tru", EOF),
            ("trux", "invalid character 'x' in literal true (expecting 'e')"),
            ("fx", "invalid character 'x' in literal false (expecting 'a')"),
            ("nul1", "invalid character '1' in literal null (expecting 'l')"),
            ("\"a\tb\"", "invalid character '\\t' in string literal"),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
            ("\"\\x\"", "invalid character 'x' in string escape code"),
            (
                "\"\\u12g4\"",
                "invalid character 'g' in \\u hexadecimal character escape",
            ),
            ("{\"a\"=1}", "invalid character '=' after object key"),
            ("{} {}", "invalid character '{' after top-level value"),
            ("\x7f", "invalid character '\\x7f' looking for beginning of value"),
            ("\u{e9}", "invalid character 'Ã' looking for beginning of value"),
            ("\u{a0}", "invalid character 'Â' looking for beginning of value"),
        ];
        for (input, want) in cases {
            assert_eq!(check_valid(input.as_bytes()).unwrap_err(), *want, "{:?}", input);
        }
        // single bytes as Go quotes them (Latin-1 runes)
        assert_eq!(quote_char(0xe9), "'é'");
        assert_eq!(quote_char(0xa0), "'\\u00a0'");
        assert_eq!(quote_char(0x85), "'\\u0085'");
        assert_eq!(quote_char(b'\\'), "'\\\\'");
        for ok in [
            "{}",
            " [] ",
            "{\"a\":[1,-0.5e+3,true,false,null,\"\\u00e9\\n\"]}",
            "0",
            "\"x\"",
        ] {
            assert_eq!(check_valid(ok.as_bytes()), Ok(()), "{:?}", ok);
        }
    }
}

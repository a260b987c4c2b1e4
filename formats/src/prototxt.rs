//! Parser for the protocol-buffer text format (`.prototxt`), schema-free.
//!
//! Caffe describes networks in this format. Rather than binding to Caffe's
//! schema, the text is parsed into a generic tree of [`Message`]s whose
//! fields keep their order and repetitions; [`crate::caffe_net`] then reads
//! the fields it understands. Supported syntax: nested messages in `{}` or
//! `<>` with an optional `:` before them, repeated fields, the `[a, b]` list
//! shorthand, `#` comments, single- or double-quoted strings with C escapes
//! (adjacent strings are concatenated), numbers such as `-0.5`, `1e-3`,
//! `0x1F` or `2.5f`, identifiers (enum values, `true`), and `,` or `;` after
//! a field. Syntax errors report `line:column` (1-based).

use crate::{FormatError, Result};

/// Deepest nesting of messages and lists accepted; a guard so a malicious
/// file cannot overflow the stack of the recursive parser.
const MAX_DEPTH: usize = 64;

/// One field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string, escapes resolved.
    Str(String),
    /// A bare word: enum values such as `MAX`, booleans, `inf`.
    Ident(String),
    /// A number, kept as written (e.g. `1e-3`, `0x10`) so integers of any
    /// size stay exact; the `as_*` methods convert it.
    Num(String),
    /// A nested message.
    Message(Message),
}

/// A message: its fields in file order, repeated fields appearing once per
/// occurrence.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub fields: Vec<(String, Value)>,
}

/// Parse a whole prototxt document into its top-level message.
pub fn parse(text: &str) -> Result<Message> {
    let mut parser = Parser {
        lexer: Lexer::new(text),
        depth: 0,
    };
    parser.message_body(None)
}

impl Value {
    /// Short description for error messages, e.g. `number 1.5`.
    pub fn describe(&self) -> String {
        match self {
            Value::Str(s) => format!("string {s:?}"),
            Value::Ident(s) => format!("identifier {s}"),
            Value::Num(s) => format!("number {s}"),
            Value::Message(_) => "a message".to_string(),
        }
    }

    /// The string of a [`Value::Str`].
    pub fn as_str(&self) -> Result<&str> {
        match self {
            Value::Str(s) => Ok(s),
            other => Err(expected("a quoted string", other)),
        }
    }

    /// The word of a [`Value::Ident`] (an enum value).
    pub fn as_ident(&self) -> Result<&str> {
        match self {
            Value::Ident(s) => Ok(s),
            other => Err(expected("an identifier", other)),
        }
    }

    /// The nested [`Message`] of a [`Value::Message`].
    pub fn as_message(&self) -> Result<&Message> {
        match self {
            Value::Message(m) => Ok(m),
            other => Err(expected("a message", other)),
        }
    }

    /// A number as `f64`; integers in hex or octal and the words `inf`,
    /// `infinity` and `nan` are accepted as the text format allows.
    pub fn as_f64(&self) -> Result<f64> {
        match self {
            Value::Num(raw) => match parse_integer(raw) {
                Some(i) => Ok(i as f64),
                None => parse_float(raw).ok_or_else(|| expected("a number", self)),
            },
            Value::Ident(word) => parse_float(word).ok_or_else(|| expected("a number", self)),
            other => Err(expected("a number", other)),
        }
    }

    /// An integer (decimal, `0x` hex or leading-zero octal) as `i64`.
    pub fn as_i64(&self) -> Result<i64> {
        self.integer().and_then(|i| {
            i64::try_from(i).map_err(|_| expected("an integer that fits 64 bits", self))
        })
    }

    /// A non-negative integer as `usize`.
    pub fn as_usize(&self) -> Result<usize> {
        self.integer()
            .and_then(|i| usize::try_from(i).map_err(|_| expected("a non-negative integer", self)))
    }

    /// A boolean: `true`/`false` (also `True`, `t`, ...) or `1`/`0`.
    pub fn as_bool(&self) -> Result<bool> {
        match self {
            Value::Ident(w) if matches!(w.as_str(), "true" | "True" | "t") => Ok(true),
            Value::Ident(w) if matches!(w.as_str(), "false" | "False" | "f") => Ok(false),
            Value::Num(raw) if raw == "1" => Ok(true),
            Value::Num(raw) if raw == "0" => Ok(false),
            other => Err(expected("a boolean", other)),
        }
    }

    fn integer(&self) -> Result<i128> {
        match self {
            Value::Num(raw) => parse_integer(raw).ok_or_else(|| expected("an integer", self)),
            other => Err(expected("an integer", other)),
        }
    }
}

impl Message {
    /// The only value of field `name`, `None` when absent. A field given more
    /// than once is an error: use [`Message::get_all`] for repeated fields.
    pub fn get(&self, name: &str) -> Result<Option<&Value>> {
        let mut all = self.get_all(name);
        let first = all.next();
        if first.is_some() && all.next().is_some() {
            return Err(FormatError::invalid(format!(
                "prototxt field `{name}` is given {} times but may appear only once",
                self.get_all(name).count()
            )));
        }
        Ok(first)
    }

    /// Every value of field `name`, in file order.
    pub fn get_all<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a Value> + use<'a, 'n> {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// True when field `name` appears at least once.
    pub fn has(&self, name: &str) -> bool {
        self.get_all(name).next().is_some()
    }

    /// The only value of field `name` converted by `convert` (one of the
    /// `Value::as_*` methods); conversion errors name the field.
    pub fn get_with<'a, T>(
        &'a self,
        name: &str,
        convert: impl Fn(&'a Value) -> Result<T>,
    ) -> Result<Option<T>> {
        self.get(name)?
            .map(|v| convert(v).map_err(|e| in_field(name, e)))
            .transpose()
    }

    /// Every value of field `name` converted by `convert`.
    pub fn get_all_with<'a, T>(
        &'a self,
        name: &str,
        convert: impl Fn(&'a Value) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.get_all(name)
            .map(|v| convert(v).map_err(|e| in_field(name, e)))
            .collect()
    }

    /// The only value of `name` as a string.
    pub fn get_str(&self, name: &str) -> Result<Option<&str>> {
        self.get_with(name, Value::as_str)
    }

    /// The only value of `name` as an enum word.
    pub fn get_ident(&self, name: &str) -> Result<Option<&str>> {
        self.get_with(name, Value::as_ident)
    }

    /// The only value of `name` as a non-negative integer.
    pub fn get_usize(&self, name: &str) -> Result<Option<usize>> {
        self.get_with(name, Value::as_usize)
    }

    /// The only value of `name` as a float.
    pub fn get_f64(&self, name: &str) -> Result<Option<f64>> {
        self.get_with(name, Value::as_f64)
    }

    /// The only value of `name` as a boolean.
    pub fn get_bool(&self, name: &str) -> Result<Option<bool>> {
        self.get_with(name, Value::as_bool)
    }

    /// The only value of `name` as a nested message.
    pub fn get_message(&self, name: &str) -> Result<Option<&Message>> {
        self.get_with(name, Value::as_message)
    }

    /// Every value of `name` as a string.
    pub fn get_all_str(&self, name: &str) -> Result<Vec<&str>> {
        self.get_all_with(name, Value::as_str)
    }

    /// Every value of `name` as a non-negative integer.
    pub fn get_all_usize(&self, name: &str) -> Result<Vec<usize>> {
        self.get_all_with(name, Value::as_usize)
    }

    /// Every value of `name` as a nested message.
    pub fn get_all_messages(&self, name: &str) -> Result<Vec<&Message>> {
        self.get_all_with(name, Value::as_message)
    }
}

fn expected(what: &str, found: &Value) -> FormatError {
    FormatError::invalid(format!("expected {what}, found {}", found.describe()))
}

/// Prefix a conversion error with the field it concerns.
fn in_field(name: &str, e: FormatError) -> FormatError {
    match e {
        FormatError::Invalid(m) => FormatError::invalid(format!("prototxt field `{name}`: {m}")),
        other => other,
    }
}

/// Integer literal: optional `-`, then `0x` hex, `0` octal or decimal.
fn parse_integer(raw: &str) -> Option<i128> {
    let (negative, digits) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let magnitude = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i128::from_str_radix(&digits[1..], 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()?
    } else {
        return None;
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Float literal, with an optional `f`/`F` suffix, or `inf`/`infinity`/`nan`.
fn parse_float(raw: &str) -> Option<f64> {
    let lower = raw.to_ascii_lowercase();
    if matches!(lower.trim_start_matches('-'), "inf" | "infinity" | "nan") {
        return lower.parse().ok();
    }
    let body = lower.strip_suffix('f').unwrap_or(&lower);
    // Rust's parser would also take words like "infinity": require a digit.
    if body.contains('x') || !body.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    body.parse().ok()
}

/// A position in the text, 1-based, for error messages.
#[derive(Debug, Clone, Copy)]
struct Pos {
    line: usize,
    column: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn syntax_error(pos: Pos, msg: impl std::fmt::Display) -> FormatError {
    FormatError::invalid(format!("prototxt {pos}: {msg}"))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Num(String),
    Str(String),
    Punct(char),
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("`{s}`"),
            Token::Num(s) => format!("number {s}"),
            Token::Str(s) => format!("string {s:?}"),
            Token::Punct(c) => format!("`{c}`"),
            Token::End => "end of file".to_string(),
        }
    }
}

/// Splits the text into tokens, skipping whitespace and comments, with one
/// token of lookahead.
struct Lexer {
    chars: Vec<char>,
    at: usize,
    pos: Pos,
    peeked: Option<(Token, Pos)>,
}

impl Lexer {
    fn new(text: &str) -> Self {
        Lexer {
            chars: text.chars().collect(),
            at: 0,
            pos: Pos { line: 1, column: 1 },
            peeked: None,
        }
    }

    fn peek(&mut self) -> Result<&(Token, Pos)> {
        let token = match self.peeked.take() {
            Some(t) => t,
            None => self.lex()?,
        };
        Ok(self.peeked.insert(token))
    }

    fn next(&mut self) -> Result<(Token, Pos)> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex(),
        }
    }

    fn current(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.current()?;
        self.at += 1;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while let Some(c) = self.current() {
            if c == '#' {
                while self.current().is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn lex(&mut self) -> Result<(Token, Pos)> {
        self.skip_blanks();
        let start = self.pos;
        let Some(c) = self.current() else {
            return Ok((Token::End, start));
        };
        let token = match c {
            '{' | '}' | '<' | '>' | '[' | ']' | ':' | ',' | ';' => {
                self.bump();
                Token::Punct(c)
            }
            '"' | '\'' => Token::Str(self.string()?),
            c if c.is_ascii_alphabetic() || c == '_' => Token::Ident(self.word()),
            c if c.is_ascii_digit() || c == '.' || c == '-' => self.number(start)?,
            other => {
                return Err(syntax_error(
                    start,
                    format!("unexpected character {other:?}"),
                ))
            }
        };
        Ok((token, start))
    }

    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self
            .current()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            w.push(c);
            self.bump();
        }
        w
    }

    /// A number, or `-inf`/`-nan`; validated here so later conversions only
    /// fail on a type mismatch (e.g. a float where an integer is needed).
    fn number(&mut self, start: Pos) -> Result<Token> {
        let mut raw = String::new();
        if self.current() == Some('-') {
            raw.push('-');
            self.bump();
        }
        if self.current().is_some_and(|c| c.is_ascii_alphabetic()) {
            raw.push_str(&self.word());
        } else {
            let mut previous = ' ';
            while let Some(c) = self.current() {
                let exponent_sign = (c == '-' || c == '+')
                    && matches!(previous, 'e' | 'E')
                    && !raw.contains(['x', 'X']);
                if !(c.is_ascii_alphanumeric() || c == '.' || exponent_sign) {
                    break;
                }
                raw.push(c);
                previous = c;
                self.bump();
            }
        }
        if parse_integer(&raw).is_none() && parse_float(&raw).is_none() {
            return Err(syntax_error(start, format!("malformed number `{raw}`")));
        }
        Ok(Token::Num(raw))
    }

    /// A quoted string with C escapes; the bytes must form UTF-8.
    fn string(&mut self) -> Result<String> {
        let start = self.pos;
        let quote = self.bump();
        let mut bytes = Vec::new();
        loop {
            let escape_pos = self.pos;
            match self.bump() {
                None | Some('\n') => return Err(syntax_error(start, "unterminated string")),
                Some(c) if Some(c) == quote => break,
                Some('\\') => self.escape(escape_pos, &mut bytes)?,
                Some(c) => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        String::from_utf8(bytes)
            .map_err(|_| syntax_error(start, "string escapes do not form valid UTF-8"))
    }

    fn escape(&mut self, pos: Pos, out: &mut Vec<u8>) -> Result<()> {
        let c = self
            .bump()
            .ok_or_else(|| syntax_error(pos, "unterminated escape"))?;
        let byte = match c {
            'n' => b'\n',
            't' => b'\t',
            'r' => b'\r',
            'a' => 0x07,
            'b' => 0x08,
            'f' => 0x0c,
            'v' => 0x0b,
            '\\' | '\'' | '"' | '?' => c as u8,
            '0'..='7' => {
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.current().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                u8::try_from(value).map_err(|_| syntax_error(pos, "octal escape above \\377"))?
            }
            'x' | 'X' => {
                let mut value = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match self.current().and_then(|d| d.to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            digits += 1;
                            self.bump();
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    return Err(syntax_error(pos, "\\x escape without hex digits"));
                }
                value as u8
            }
            other => return Err(syntax_error(pos, format!("unknown escape \\{other}"))),
        };
        out.push(byte);
        Ok(())
    }
}

/// Recursive-descent parser over the [`Lexer`]'s tokens.
struct Parser {
    lexer: Lexer,
    depth: usize,
}

impl Parser {
    /// Fields until `close` (or the end of the text for the top level).
    fn message_body(&mut self, close: Option<(char, Pos)>) -> Result<Message> {
        let mut message = Message::default();
        loop {
            let (token, pos) = self.lexer.next()?;
            match (token, close) {
                (Token::End, None) => return Ok(message),
                (Token::End, Some((c, open))) => {
                    return Err(syntax_error(
                        pos,
                        format!("end of file inside the message opened at {open}; expected `{c}`"),
                    ))
                }
                (Token::Punct(c), Some((want, _))) if c == want => return Ok(message),
                (Token::Ident(name), _) => {
                    self.field_value(&name, &mut message)?;
                    if let (Token::Punct(',' | ';'), _) = self.lexer.peek()? {
                        self.lexer.next()?;
                    }
                }
                (token, _) => {
                    return Err(syntax_error(
                        pos,
                        format!("expected a field name, found {}", token.describe()),
                    ))
                }
            }
        }
    }

    /// After a field name: `: scalar`, `[: ] { message }`, `: [list]`.
    /// Appends one field per value (lists give several).
    fn field_value(&mut self, name: &str, message: &mut Message) -> Result<()> {
        let (token, pos) = self.lexer.next()?;
        match token {
            Token::Punct(':') => {
                if let (Token::Punct('['), _) = self.lexer.peek()? {
                    let (_, open) = self.lexer.next()?;
                    self.list(name, open, message)
                } else {
                    let value = self.value()?;
                    message.fields.push((name.to_string(), value));
                    Ok(())
                }
            }
            Token::Punct(open @ ('{' | '<')) => {
                let nested = self.nested(open, pos)?;
                message
                    .fields
                    .push((name.to_string(), Value::Message(nested)));
                Ok(())
            }
            other => Err(syntax_error(
                pos,
                format!(
                    "expected `:` or `{{` after field `{name}`, found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// `[a, b, ...]`: each element becomes one occurrence of the field.
    fn list(&mut self, name: &str, open: Pos, message: &mut Message) -> Result<()> {
        if let (Token::Punct(']'), _) = self.lexer.peek()? {
            self.lexer.next()?;
            return Ok(());
        }
        loop {
            let value = self.value()?;
            message.fields.push((name.to_string(), value));
            match self.lexer.next()? {
                (Token::Punct(','), _) => {}
                (Token::Punct(']'), _) => return Ok(()),
                (other, pos) => {
                    return Err(syntax_error(
                        pos,
                        format!(
                            "expected `,` or `]` in the list opened at {open}, found {}",
                            other.describe()
                        ),
                    ))
                }
            }
        }
    }

    /// A scalar (adjacent strings concatenated) or a braced message.
    fn value(&mut self) -> Result<Value> {
        let (token, pos) = self.lexer.next()?;
        match token {
            Token::Num(raw) => Ok(Value::Num(raw)),
            Token::Ident(word) => Ok(Value::Ident(word)),
            Token::Str(mut s) => {
                while let (Token::Str(_), _) = self.lexer.peek()? {
                    if let (Token::Str(more), _) = self.lexer.next()? {
                        s.push_str(&more);
                    }
                }
                Ok(Value::Str(s))
            }
            Token::Punct(open @ ('{' | '<')) => Ok(Value::Message(self.nested(open, pos)?)),
            other => Err(syntax_error(
                pos,
                format!("expected a value, found {}", other.describe()),
            )),
        }
    }

    fn nested(&mut self, open: char, pos: Pos) -> Result<Message> {
        if self.depth >= MAX_DEPTH {
            return Err(syntax_error(
                pos,
                format!("messages nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let close = if open == '{' { '}' } else { '>' };
        self.depth += 1;
        let body = self.message_body(Some((close, pos)));
        self.depth -= 1;
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text).expect_err("must fail").to_string()
    }

    #[test]
    fn scalars_of_every_kind() {
        let m = parse(r#"name: "FireNet" pool: MAX num: 96 ratio: 0.5 lr: 1e-3 neg: -0.5 hex: 0x1F oct: 017 flt: 2.5f on: true"#)
            .unwrap();
        assert_eq!(m.get_str("name").unwrap(), Some("FireNet"));
        assert_eq!(m.get_ident("pool").unwrap(), Some("MAX"));
        assert_eq!(m.get_usize("num").unwrap(), Some(96));
        assert_eq!(m.get_f64("ratio").unwrap(), Some(0.5));
        assert_eq!(m.get_f64("lr").unwrap(), Some(1e-3));
        assert_eq!(m.get_f64("neg").unwrap(), Some(-0.5));
        assert_eq!(m.get_usize("hex").unwrap(), Some(31));
        assert_eq!(m.get_usize("oct").unwrap(), Some(15));
        assert_eq!(m.get_f64("flt").unwrap(), Some(2.5));
        assert_eq!(m.get_bool("on").unwrap(), Some(true));
        assert_eq!(m.get_usize("missing").unwrap(), None);
    }

    #[test]
    fn negative_integers_and_infinities() {
        let m = parse("a: -3 b: -inf c: inf").unwrap();
        assert_eq!(m.get_with("a", Value::as_i64).unwrap(), Some(-3));
        assert_eq!(m.get_f64("b").unwrap(), Some(f64::NEG_INFINITY));
        assert_eq!(m.get_f64("c").unwrap(), Some(f64::INFINITY));
        assert!(m.get_usize("a").is_err(), "-3 is not a usize");
    }

    #[test]
    fn nested_messages_with_braces_angles_and_optional_colon() {
        let m = parse("layer { name: \"a\" param: < lr: 1 > } layer: { name: \"b\" }").unwrap();
        let layers = m.get_all_messages("layer").unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].get_str("name").unwrap(), Some("a"));
        assert_eq!(
            layers[0]
                .get_message("param")
                .unwrap()
                .unwrap()
                .get_usize("lr")
                .unwrap(),
            Some(1)
        );
        assert_eq!(layers[1].get_str("name").unwrap(), Some("b"));
    }

    #[test]
    fn repeated_fields_keep_order_and_singular_get_rejects_them() {
        let m = parse("dim: 1 dim: 3 dim: 227 dim: 227").unwrap();
        assert_eq!(m.get_all_usize("dim").unwrap(), vec![1, 3, 227, 227]);
        let e = m.get("dim").unwrap_err().to_string();
        assert!(e.contains("`dim`") && e.contains("4 times"), "{e}");
    }

    #[test]
    fn list_shorthand_expands_to_repeated_fields() {
        let m = parse("dim: [1, 3, 224, 224] empty: [] msgs: [{a: 1}, {a: 2}]").unwrap();
        assert_eq!(m.get_all_usize("dim").unwrap(), vec![1, 3, 224, 224]);
        assert!(!m.has("empty"));
        assert_eq!(m.get_all_messages("msgs").unwrap().len(), 2);
    }

    #[test]
    fn comments_and_separators() {
        let m = parse("# header\na: 1, b: 2; # trailing\nc { d: 3; }\n# end").unwrap();
        assert_eq!(m.fields.len(), 3);
        assert_eq!(m.get_usize("b").unwrap(), Some(2));
        assert_eq!(
            m.get_message("c").unwrap().unwrap().get_usize("d").unwrap(),
            Some(3)
        );
    }

    #[test]
    fn string_escapes_and_concatenation() {
        let m = parse(r#"s: "a\"b\\c\n\t\x41\101" t: 'it''s' u: "caf\303\251" v: "x#y""#).unwrap();
        assert_eq!(m.get_str("s").unwrap(), Some("a\"b\\c\n\tAA"));
        assert_eq!(m.get_str("t").unwrap(), Some("its"));
        assert_eq!(m.get_str("u").unwrap(), Some("café"));
        assert_eq!(
            m.get_str("v").unwrap(),
            Some("x#y"),
            "# inside a string is not a comment"
        );
    }

    #[test]
    fn type_mismatches_name_the_field() {
        let m = parse("n: 1.5 s: MAX").unwrap();
        let e = m.get_usize("n").unwrap_err().to_string();
        assert!(e.contains("`n`") && e.contains("1.5"), "{e}");
        let e = m.get_str("s").unwrap_err().to_string();
        assert!(e.contains("`s`") && e.contains("identifier MAX"), "{e}");
    }

    #[test]
    fn syntax_errors_report_line_and_column() {
        assert!(err("a: 1\nb 2").contains("2:3"), "{}", err("a: 1\nb 2"));
        assert!(
            err("layer {\n  name: \"x\"\n").contains("3:1"),
            "{}",
            err("layer {\n  name: \"x\"\n")
        );
        assert!(err("a: \"open").contains("1:4"));
        assert!(err("a: 1.2.3").contains("malformed number"));
        assert!(err("a: \"\\q\"").contains("unknown escape"));
        assert!(err("a { b: 1 >").contains("1:10"));
        assert!(err("a: }").contains("expected a value"));
        assert!(err("a: [1 2]").contains("expected `,` or `]`"));
        assert!(err("a: @").contains("unexpected character"));
        assert!(err("a: \"\\xff\"").contains("UTF-8"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = "a {".repeat(10_000);
        assert!(err(&text).contains("nested deeper"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[a-z0-9{}<>:\\[\\],;#\"'\\\\ .\\-\n]{0,200}") {
            let _ = parse(&text);
        }
    }
}

//! Tracepoint record layouts, read from tracefs `events/<group>/<name>/format` files.
use std::{collections::BTreeMap, fs, io, path::Path};

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The C declaration without the name, e.g. `int`, `const void *`, `__u8[4]`.
    pub ctype: String,
    pub offset: u32,
    pub size: u32,
}

/// The fields of one tracepoint by name (common_* fields included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Format {
    pub fields: BTreeMap<String, Field>,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} line {line}: cannot parse field declaration {text:?}")]
    Parse {
        path: String,
        line: usize,
        text: String,
    },
}

impl Format {
    pub fn read(path: &Path) -> Result<Self, FormatError> {
        let text = fs::read_to_string(path).map_err(|source| FormatError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, text)| FormatError::Parse {
            path: path.display().to_string(),
            line,
            text,
        })
    }

    /// Parses lines like `\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;`.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut fields = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let bad = || (i + 1, line.to_string());
            let mut parts = rest.split(';').map(str::trim);
            let decl = parts.next().ok_or_else(bad)?;
            let mut offset = None;
            let mut size = None;
            for part in parts {
                if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            let (ctype, name) = split_decl(decl).ok_or_else(bad)?;
            fields.insert(
                name,
                Field {
                    ctype,
                    offset: offset.ok_or_else(bad)?,
                    size: size.ok_or_else(bad)?,
                },
            );
        }
        Ok(Self { fields })
    }
}

/// `char prev_comm[16]` -> (`char[16]`, `prev_comm`); `const void * skaddr` -> (`const void *`,
/// `skaddr`); `__data_loc char[] parent_comm` -> (`__data_loc char[]`, `parent_comm`).
fn split_decl(decl: &str) -> Option<(String, String)> {
    let decl = decl.trim();
    // The split character may be several bytes long (U+0085 and U+2028 are whitespace too).
    let (split, c) = decl
        .char_indices()
        .rev()
        .find(|&(_, c)| c.is_whitespace() || c == '*')?;
    let end = split + c.len_utf8();
    let (head, last) = (decl[..end].trim(), decl[end..].trim());
    let (name, array) = match last.find('[') {
        Some(i) => (&last[..i], &last[i..]),
        None => (last, ""),
    };
    if name.is_empty() {
        None
    } else {
        Some((format!("{head}{array}"), name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET_STATE: &str = "name: inet_sock_set_state\nID: 1466\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n\
\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n\
\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
\nprint fmt: \"...\"\n";

    #[test]
    fn parses_scalars_pointers_arrays_and_data_loc() {
        let f = Format::parse(SET_STATE).expect("parses");
        assert_eq!(
            f.fields["skaddr"],
            Field {
                ctype: "const void *".into(),
                offset: 8,
                size: 8
            }
        );
        assert_eq!(f.fields["oldstate"].offset, 16);
        assert_eq!(f.fields["saddr"].ctype, "__u8[4]");
        assert_eq!(f.fields["parent_comm"].ctype, "__data_loc char[]");
        assert_eq!(f.fields["common_type"].size, 2);
    }

    /// Found by the tracefs_format fuzz target: a multi-byte whitespace before the name.
    #[test]
    fn a_name_after_a_multi_byte_space_splits_on_a_char_boundary() {
        let f = Format::parse("\tfield:int\u{85}x;\toffset:4;\tsize:4;\n").expect("parses");
        assert_eq!(f.fields["x"].ctype, "int");
        assert_eq!(split_decl("int\u{2028}*\u{85}"), None);
    }

    #[test]
    fn a_field_without_offset_is_an_error_with_its_line() {
        let err = Format::parse("format:\n\tfield:int x;\tsize:4;\n").expect_err("no offset");
        assert_eq!(err.0, 2);
    }
}

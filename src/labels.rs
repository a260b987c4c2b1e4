//! ImageNet label files: the class table (`imagenet-classes.tsv`, columns
//! `class_index wnid name`) and an image folder's `labels.tsv` (columns
//! `file class_index wnid name`). Both are tab-separated with a header line.
//! Every problem is reported with the file and line it comes from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Number of ImageNet-1k classes; class indices must be below it.
pub const IMAGENET_CLASSES: usize = 1000;

/// Header of a class table.
const CLASSES_HEADER: [&str; 3] = ["class_index", "wnid", "name"];

/// Header of a `labels.tsv`.
const LABELS_HEADER: [&str; 4] = ["file", "class_index", "wnid", "name"];

/// Why a label file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line (1-based) does not fit the format.
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One ImageNet class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassInfo {
    /// WordNet id, e.g. `n01484850`.
    pub wnid: String,
    /// Human-readable name, e.g. `great white shark`.
    pub name: String,
}

/// The class table: entry `i` describes class index `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassTable {
    classes: Vec<ClassInfo>,
}

impl ClassTable {
    /// Read a class table file.
    pub fn read(path: &Path) -> Result<Self, LabelError> {
        Self::parse(&read_text(path)?, path)
    }

    /// Parse class table text; `path` only names it in errors. Rows must
    /// list indices 0, 1, 2, ... in order, at most [`IMAGENET_CLASSES`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, LabelError> {
        let mut classes = Vec::new();
        for (line, fields) in rows(text, path, &CLASSES_HEADER)? {
            let malformed = |message: String| LabelError::Malformed {
                path: path.to_path_buf(),
                line,
                message,
            };
            let index = parse_class_index(fields[0]).map_err(malformed)?;
            if index != classes.len() {
                return Err(malformed(format!(
                    "class index {index}, expected {} (rows must be in order)",
                    classes.len()
                )));
            }
            classes.push(ClassInfo {
                wnid: fields[1].to_owned(),
                name: fields[2].to_owned(),
            });
        }
        Ok(ClassTable { classes })
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether the table lists no class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The class with index `index`.
    pub fn get(&self, index: usize) -> Option<&ClassInfo> {
        self.classes.get(index)
    }
}

/// An image file with its ground-truth class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledImage {
    /// Path of the image (the folder of `labels.tsv` joined with its `file`).
    pub path: PathBuf,
    /// Class index, below [`IMAGENET_CLASSES`].
    pub class_index: usize,
}

/// Read a `labels.tsv`; image paths are relative to its folder. When
/// `classes` is given, every class index must exist in it with the same wnid.
pub fn read_labels(
    path: &Path,
    classes: Option<&ClassTable>,
) -> Result<Vec<LabeledImage>, LabelError> {
    let base = path.parent().unwrap_or(Path::new(""));
    parse_labels(&read_text(path)?, path, base, classes)
}

/// Parse `labels.tsv` text; `path` names it in errors and file names are
/// joined to `base`. File names must be unique.
pub fn parse_labels(
    text: &str,
    path: &Path,
    base: &Path,
    classes: Option<&ClassTable>,
) -> Result<Vec<LabeledImage>, LabelError> {
    let mut images = Vec::new();
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    for (line, fields) in rows(text, path, &LABELS_HEADER)? {
        let malformed = |message: String| LabelError::Malformed {
            path: path.to_path_buf(),
            line,
            message,
        };
        let [file, index, wnid, _name] = fields;
        if file.is_empty() {
            return Err(malformed("empty file name".into()));
        }
        if let Some(previous) = first_line.insert(file, line) {
            return Err(malformed(format!(
                "{file} is listed twice (first on line {previous})"
            )));
        }
        let class_index = parse_class_index(index).map_err(malformed)?;
        if let Some(table) = classes {
            match table.get(class_index) {
                None => {
                    return Err(malformed(format!(
                        "class index {class_index} is not in the class table ({} classes)",
                        table.len()
                    )))
                }
                Some(class) if class.wnid != wnid => {
                    return Err(malformed(format!(
                        "wnid {wnid} does not match class {class_index} of the class table ({})",
                        class.wnid
                    )))
                }
                Some(_) => {}
            }
        }
        images.push(LabeledImage {
            path: base.join(file),
            class_index,
        });
    }
    Ok(images)
}

/// Read a whole text file, naming it in the error.
fn read_text(path: &Path) -> Result<String, LabelError> {
    std::fs::read_to_string(path).map_err(|source| LabelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The data rows of a tab-separated file whose first line must be `header`:
/// `(1-based line number, fields)` for every non-blank line, each with
/// exactly `header.len()` fields. A trailing `\r` is ignored.
fn rows<'t, const N: usize>(
    text: &'t str,
    path: &Path,
    header: &[&str; N],
) -> Result<Vec<(usize, [&'t str; N])>, LabelError> {
    let malformed = |line: usize, message: String| LabelError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut lines = text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, first)) if first.split('\t').eq(header.iter().copied()) => {}
        Some((_, first)) => {
            return Err(malformed(
                1,
                format!("header {first:?}, expected {:?}", header.join("\t")),
            ));
        }
        None => {
            return Err(malformed(
                1,
                format!("empty file, expected header {:?}", header.join("\t")),
            ))
        }
    }
    lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(line, l)| {
            let fields: Vec<&str> = l.split('\t').collect();
            let count = fields.len();
            let fields: [&str; N] = fields.try_into().map_err(|_| {
                malformed(line, format!("{count} tab-separated fields, expected {N}"))
            })?;
            Ok((line, fields))
        })
        .collect()
}

/// A class index field: a decimal integer below [`IMAGENET_CLASSES`].
fn parse_class_index(field: &str) -> Result<usize, String> {
    match field.parse::<usize>() {
        Ok(i) if i < IMAGENET_CLASSES => Ok(i),
        Ok(i) => Err(format!(
            "class index {i} is out of range (must be below {IMAGENET_CLASSES})"
        )),
        Err(_) => Err(format!(
            "class index {field:?} is not a non-negative integer"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSES: &str = "class_index\twnid\tname\n0\tn01440764\ttench\n1\tn01443537\tgoldfish\n";

    fn table() -> ClassTable {
        ClassTable::parse(CLASSES, Path::new("classes.tsv")).expect("valid table")
    }

    fn labels(text: &str) -> Result<Vec<LabeledImage>, LabelError> {
        parse_labels(
            text,
            Path::new("dir/labels.tsv"),
            Path::new("dir"),
            Some(&table()),
        )
    }

    #[test]
    fn parses_class_table() {
        let t = table();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(1).map(|c| c.name.as_str()), Some("goldfish"));
        assert_eq!(t.get(2), None);
    }

    #[test]
    fn parses_labels_relative_to_their_folder() {
        let got = labels("file\tclass_index\twnid\tname\r\na.JPEG\t1\tn01443537\tgoldfish\r\n\nb.JPEG\t0\tn01440764\ttench\n")
            .expect("valid labels");
        assert_eq!(
            got,
            vec![
                LabeledImage {
                    path: PathBuf::from("dir/a.JPEG"),
                    class_index: 1
                },
                LabeledImage {
                    path: PathBuf::from("dir/b.JPEG"),
                    class_index: 0
                },
            ]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let header = "file\tclass_index\twnid\tname\n";
        let cases = [
            ("file\tlabel\n", "dir/labels.tsv:1: header"),
            ("", "dir/labels.tsv:1: empty file"),
            (
                &*format!("{header}a.JPEG\t1\tn01443537\n"),
                "dir/labels.tsv:2: 3 tab-separated fields, expected 4",
            ),
            (
                &*format!("{header}a.JPEG\t1000\tn0\tx\n"),
                "dir/labels.tsv:2: class index 1000 is out of range",
            ),
            (
                &*format!("{header}a.JPEG\t-1\tn0\tx\n"),
                "dir/labels.tsv:2: class index \"-1\" is not",
            ),
            (
                &*format!("{header}a.JPEG\t5\tn0\tx\n"),
                "dir/labels.tsv:2: class index 5 is not in the class table",
            ),
            (
                &*format!("{header}a.JPEG\t1\tn01440764\tx\n"),
                "dir/labels.tsv:2: wnid n01440764 does not match class 1",
            ),
            (
                &*format!("{header}a.JPEG\t1\tn01443537\tx\n\na.JPEG\t1\tn01443537\tx\n"),
                "dir/labels.tsv:4: a.JPEG is listed twice (first on line 2)",
            ),
            (
                &*format!("{header}\t1\tn01443537\tx\n"),
                "dir/labels.tsv:2: empty file name",
            ),
        ];
        for (text, want) in cases {
            let err = labels(text).expect_err(want).to_string();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }

    #[test]
    fn class_table_rows_must_be_in_order() {
        let err = ClassTable::parse("class_index\twnid\tname\n1\tn0\tx\n", Path::new("c.tsv"))
            .expect_err("gap");
        assert_eq!(
            err.to_string(),
            "c.tsv:2: class index 1, expected 0 (rows must be in order)"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let err = read_labels(Path::new("/nonexistent/labels.tsv"), None).expect_err("missing");
        assert!(
            err.to_string().starts_with("/nonexistent/labels.tsv: "),
            "{err}"
        );
    }
}

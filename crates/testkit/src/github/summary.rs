//! The step summary as GitHub renders it, so tests can ask what in it is live: every link,
//! image and piece of raw HTML, and whether each table cell, code span and code block holds
//! exactly the text that was meant to be there.
//!
//! GitHub's rules ("Adding a job summary", workflow-commands docs): the file is GitHub-flavoured
//! Markdown, rendered like a comment: tables, strikethrough, task lists, extended autolinks (a
//! bare `https://...`, `http://...`, `www.` or e-mail address becomes a link without any
//! markup), and raw HTML, which GitHub's sanitizer filters but still lets `<a href>`, `<img>`,
//! `<details>` and the like through (`@actions/core`'s own `summary` helpers write HTML tables,
//! links and images). Parsed here with comrak and those extensions on; any raw HTML counts as live.

use comrak::nodes::{AstNode, NodeValue};
use comrak::{Arena, Options, parse_document};

/// What a rendered summary contains that matters for injection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Links of every kind: `[text](url)`, references, `<url>`, bare URLs and `www.` names.
    pub links: Vec<Link>,
    /// Images, each with its alt text as `text`.
    pub images: Vec<Link>,
    /// Raw HTML, inline or block, as written.
    pub html: Vec<String>,
    /// Every table, header row first.
    pub tables: Vec<Vec<Vec<Cell>>>,
    /// The literal text of every code span, in order.
    pub code_spans: Vec<String>,
    /// The literal text of every fenced or indented code block, in order.
    pub code_blocks: Vec<String>,
}

/// A link or image destination with the text shown for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub url: String,
    pub text: String,
}

/// One table cell: its plain text (code spans included) and the code spans in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub code: Vec<String>,
}

impl Summary {
    /// Every live element, described (`link <url>`, `image <url>`, `html <raw>`): what a test
    /// asserts is empty, or holds only kubeship's own.
    pub fn live(&self) -> Vec<String> {
        let links = self.links.iter().map(|l| format!("link {}", l.url));
        let images = self.images.iter().map(|l| format!("image {}", l.url));
        let html = self.html.iter().map(|h| format!("html {h}"));
        links.chain(images).chain(html).collect()
    }
}

/// Parses a step summary as GitHub-flavoured Markdown.
pub fn render(markdown: &str) -> Summary {
    let mut options = Options::default();
    options.extension.table = true;
    options.extension.autolink = true;
    options.extension.strikethrough = true;
    options.extension.tasklist = true;
    options.extension.footnotes = true;
    let arena = Arena::new();
    let root = parse_document(&arena, markdown, &options);
    let mut summary = Summary::default();
    for node in root.descendants() {
        match &node.data().value {
            NodeValue::Link(link) => {
                summary.links.push(Link { url: link.url.clone(), text: text_of(node) });
            }
            NodeValue::Image(link) => {
                summary.images.push(Link { url: link.url.clone(), text: text_of(node) });
            }
            NodeValue::HtmlInline(raw) => summary.html.push(raw.clone()),
            NodeValue::HtmlBlock(block) => summary.html.push(block.literal.clone()),
            NodeValue::Code(code) => summary.code_spans.push(code.literal.clone()),
            NodeValue::CodeBlock(block) => summary.code_blocks.push(block.literal.clone()),
            NodeValue::Table(_) => summary.tables.push(table(node)),
            _ => {}
        }
    }
    summary
}

fn table<'a>(node: &'a AstNode<'a>) -> Vec<Vec<Cell>> {
    node.children()
        .map(|row| {
            row.children()
                .map(|cell| {
                    let code = cell
                        .descendants()
                        .filter_map(|n| match &n.data().value {
                            NodeValue::Code(code) => Some(code.literal.clone()),
                            _ => None,
                        })
                        .collect();
                    Cell { text: text_of(cell), code }
                })
                .collect()
        })
        .collect()
}

/// The plain text a node shows: its text and code, breaks as spaces and new lines.
fn text_of<'a>(node: &'a AstNode<'a>) -> String {
    let mut text = String::new();
    for n in node.descendants().skip(1) {
        match &n.data().value {
            NodeValue::Text(t) => text.push_str(t),
            NodeValue::Code(code) => text.push_str(&code.literal),
            NodeValue::HtmlInline(raw) => text.push_str(raw),
            NodeValue::SoftBreak => text.push(' '),
            NodeValue::LineBreak => text.push('\n'),
            _ => {}
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{Cell, Link, render};

    #[test]
    fn live_elements_of_every_kind() {
        let md = "[a](https://x.test/a) ![i](https://x.test/i.png) <https://x.test/angle>\n\
                  see https://x.test/bare and www.x.test and a@x.test\n\n\
                  <img src=\"https://x.test/raw.png\"> <details>";
        let s = render(md);
        let urls: Vec<&str> = s.links.iter().map(|l| l.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://x.test/a",
                "https://x.test/angle",
                "https://x.test/bare",
                "http://www.x.test",
                "mailto:a@x.test"
            ]
        );
        assert_eq!(s.images, [Link { url: "https://x.test/i.png".into(), text: "i".into() }]);
        assert_eq!(s.html, ["<img src=\"https://x.test/raw.png\">", "<details>"]);
        assert_eq!(s.live().len(), 8);
    }

    #[test]
    fn inert_text_in_code_stays_inert() {
        let s = render("`https://x.test/![i](y)` ``a`b``\n\n```\n[l](u) <b>\n```\n");
        assert!(s.live().is_empty(), "{:?}", s.live());
        assert_eq!(s.code_spans, ["https://x.test/![i](y)", "a`b"]);
        assert_eq!(s.code_blocks, ["[l](u) <b>\n"]);
    }

    /// Issue 12 item 5: a backtick in an image name breaks a single-backtick code span, and a
    /// `|` not escaped splits the cell.
    #[test]
    fn broken_cells_and_spans_show() {
        let md = "| image | note |\n|---|---|\n| `repo:ta`g` | a \\| b |\n| `x` | c | d |\n";
        let s = render(md);
        let rows = &s.tables[0];
        assert_eq!(rows[1][0], Cell { text: "repo:tag`".into(), code: vec!["repo:ta".into()] });
        assert_eq!(rows[1][1].text, "a | b");
        assert_eq!(rows[2].len(), 2, "extra cells are dropped");
        let fixed = render("| image |\n|---|\n| ``repo:ta`g`` |\n");
        assert_eq!(fixed.tables[0][1][0].code, ["repo:ta`g"]);
        // GFM splits cells before code spans: a pipe needs `\|` even inside one.
        let piped = render("| a | b |\n|---|---|\n| `x|y` | `x\\|y` |\n");
        assert_eq!(piped.tables[0][1][0].text, "`x");
        assert_eq!(piped.tables[0][1][1], Cell { text: "y`".into(), code: vec![] });
        let escaped = render("| a |\n|---|\n| `x\\|y` |\n");
        assert_eq!(escaped.tables[0][1][0].code, ["x|y"]);
    }
}

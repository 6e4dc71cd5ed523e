//! The step summary as GitHub renders it, so tests can ask what in it is live: every link,
//! image and piece of raw HTML, and whether each table cell, code span and code block holds
//! exactly the text that was meant to be there.
//!
//! GitHub's rules ("Adding a job summary", workflow-commands docs): the file is GitHub-flavoured
//! Markdown, rendered like a comment: tables, strikethrough, task lists, extended autolinks (a
//! bare `https://...`, `http://...`, `www.` or e-mail address becomes a link without any
//! markup), and raw HTML, which GitHub's sanitizer filters but still lets `<a href>`, `<img>`,
//! `<details>` and the like through (`@actions/core`'s own `summary` helpers write HTML tables,
//! links and images). Parsed here with markdown-rs's GFM options; any raw HTML counts as live.

use markdown::mdast::Node;
use markdown::{ParseOptions, to_mdast};

/// What a rendered summary contains that matters for injection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Links of every kind: `[text](url)`, references, `<url>`, bare URLs and `www.` names.
    pub links: Vec<Link>,
    /// Images, each with its alt text as `text`.
    pub images: Vec<Link>,
    /// Raw HTML, inline or block, as written.
    pub html: Vec<String>,
    /// Every table, header row first, each row cut or padded to the header's width as GFM
    /// renders it.
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

/// Parses a step summary as GitHub-flavoured Markdown (markdown-rs with its GFM options).
pub fn render(markdown: &str) -> Summary {
    let mut summary = Summary::default();
    let root = match to_mdast(markdown, &ParseOptions::gfm()) {
        Ok(root) => root,
        Err(message) => {
            // Only MDX input can fail to parse; fail closed so a test notices.
            summary.html.push(format!("unparsed: {message}"));
            return summary;
        }
    };
    let mut definitions: Vec<(String, String)> = Vec::new();
    walk(&root, &mut |node| {
        if let Node::Definition(d) = node {
            definitions.push((d.identifier.clone(), d.url.clone()));
        }
    });
    let defined = |identifier: &str| {
        definitions
            .iter()
            .find(|(id, _)| id == identifier)
            .map(|(_, url)| url.clone())
            .unwrap_or_default()
    };
    walk(&root, &mut |node| match node {
        Node::Link(link) => summary.links.push(Link { url: link.url.clone(), text: text_of(node) }),
        Node::LinkReference(link) => {
            summary.links.push(Link { url: defined(&link.identifier), text: text_of(node) });
        }
        Node::Image(image) => {
            summary.images.push(Link { url: image.url.clone(), text: image.alt.clone() });
        }
        Node::ImageReference(image) => {
            summary.images.push(Link { url: defined(&image.identifier), text: image.alt.clone() });
        }
        Node::Html(html) => summary.html.push(html.value.clone()),
        Node::InlineCode(code) => summary.code_spans.push(code.value.clone()),
        Node::Code(code) => summary.code_blocks.push(code.value.clone()),
        Node::Table(table) => {
            let mut rows: Vec<Vec<Cell>> = table
                .children
                .iter()
                .map(|row| {
                    row.children().map_or_else(Vec::new, |cells| cells.iter().map(cell).collect())
                })
                .collect();
            // As rendered: every row as wide as the header, extra cells dropped, missing empty.
            let width = rows.first().map_or(0, Vec::len);
            for row in &mut rows {
                row.resize(width, Cell::default());
            }
            summary.tables.push(rows);
        }
        _ => {}
    });
    summary
}

/// Visits a node and all below it, in document order.
fn walk(node: &Node, visit: &mut dyn FnMut(&Node)) {
    visit(node);
    for child in node.children().into_iter().flatten() {
        walk(child, visit);
    }
}

fn cell(node: &Node) -> Cell {
    let mut code = Vec::new();
    walk(node, &mut |n| {
        if let Node::InlineCode(c) = n {
            code.push(c.value.clone());
        }
    });
    Cell { text: text_of(node), code }
}

/// The plain text a node shows: its text, code and inline HTML; breaks as new lines.
fn text_of(node: &Node) -> String {
    let mut text = String::new();
    walk(node, &mut |n| match n {
        Node::Text(t) => text.push_str(&t.value),
        Node::InlineCode(c) => text.push_str(&c.value),
        Node::Html(h) => text.push_str(&h.value),
        Node::Break(_) => text.push('\n'),
        _ => {}
    });
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
        assert_eq!(s.code_blocks, ["[l](u) <b>"]);
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

//! An agent's markdown as HTML that is safe to show: rendered by
//! pulldown-cmark, then cleaned by ammonia to a small set of tags and
//! attributes. Raw HTML in the markdown is treated as text, links keep only
//! http(s) and mailto, and every link opens without a referrer.

use std::collections::HashSet;
use std::sync::OnceLock;

use pulldown_cmark::{Event, Options, Parser, html};

fn cleaner() -> &'static ammonia::Builder<'static> {
    static CLEANER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    CLEANER.get_or_init(|| {
        let tags: HashSet<&str> = [
            "a",
            "blockquote",
            "br",
            "code",
            "del",
            "em",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "hr",
            "li",
            "ol",
            "p",
            "pre",
            "strong",
            "table",
            "tbody",
            "td",
            "th",
            "thead",
            "tr",
            "ul",
            "input",
        ]
        .into_iter()
        .collect();
        let mut builder = ammonia::Builder::default();
        builder
            .tags(tags)
            .url_schemes(["http", "https", "mailto"].into_iter().collect())
            .link_rel(Some("noopener noreferrer nofollow"))
            .add_tag_attributes("a", ["href", "title"])
            .add_tag_attributes("code", ["class"])
            .add_tag_attributes("input", ["type", "checked", "disabled"])
            .add_tag_attributes("th", ["align"])
            .add_tag_attributes("td", ["align"]);
        builder
    })
}

/// `text` (markdown) as sanitised HTML.
pub fn to_safe_html(text: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // Raw HTML in the markdown is shown, not interpreted.
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut rendered = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut rendered, events);
    cleaner().clean(&rendered).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_html() {
        let html = to_safe_html("**bold** and `code`\n\n- one\n- two");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(html.contains("<code>code</code>"), "{html}");
        assert!(html.contains("<li>one</li>"), "{html}");
    }

    #[test]
    fn nothing_an_agent_writes_can_run() {
        for attack in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[click](javascript:alert(1))",
            "<a href=\"javascript:alert(1)\">x</a>",
            "[x](data:text/html,<script>alert(1)</script>)",
            "<iframe src=https://evil.example></iframe>",
            "<div style=\"background:url(javascript:alert(1))\">x</div>",
        ] {
            let html = to_safe_html(attack);
            // Shown as text is fine; inside a tag, nothing of it may remain.
            let tags: Vec<&str> = html
                .split('<')
                .skip(1)
                .filter_map(|rest| rest.split_once('>').map(|(tag, _)| tag))
                .collect();
            for tag in tags {
                for bad in [
                    "script",
                    "img",
                    "iframe",
                    "on",
                    "javascript:",
                    "style",
                    "data:",
                ] {
                    let name_or_attribute = tag
                        .split_whitespace()
                        .any(|part| part.trim_start_matches('/').starts_with(bad));
                    assert!(
                        !name_or_attribute && !tag.contains("javascript:"),
                        "{attack:?} gave the tag <{tag}> in {html}"
                    );
                }
            }
        }
    }

    #[test]
    fn links_keep_their_address_and_lose_the_referrer() {
        let html = to_safe_html("[docs](https://example.org/a)");
        assert!(html.contains("href=\"https://example.org/a\""), "{html}");
        assert!(html.contains("noreferrer"), "{html}");
    }
}

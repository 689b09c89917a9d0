//! The one table printer: every scenario hands it a [`Table`].

/// One scenario's table, with the lines that explain it.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// The scenario's name (a heading in Markdown).
    pub title: String,
    /// Lines printed above the table: what was measured and how.
    pub intro: Vec<String>,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// How many leading columns are left-aligned (the others are numbers, right-aligned).
    pub left: usize,
}

impl Table {
    /// Renders the table. With `markdown`, a `###` heading and `command` (the exact command
    /// line that produced it) in a code block come first; otherwise a plain title line.
    pub fn render(&self, markdown: bool, command: &str) -> String {
        let mut s = String::new();
        if markdown {
            s += &format!("### {}\n\n```sh\n{command}\n```\n\n", self.title);
            if !self.intro.is_empty() {
                s += &self.intro.join("\n");
                s += "\n\n";
            }
        } else {
            s += &format!("== {} ==\n", self.title);
            for l in &self.intro {
                s += l;
                s += "\n";
            }
            s += "\n";
        }
        s += &self.grid();
        s
    }

    /// The padded pipe table (valid Markdown, readable as text).
    pub fn grid(&self) -> String {
        let cols = self.header.len();
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            assert_eq!(r.len(), cols, "table {}: a row has {} cells for {cols} columns", self.title, r.len());
            for (j, c) in r.iter().enumerate() {
                w[j] = w[j].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from("|");
            for (j, c) in cells.iter().enumerate() {
                let pad = " ".repeat(w[j] - c.chars().count());
                if j < self.left {
                    s += &format!(" {c}{pad} |");
                } else {
                    s += &format!(" {pad}{c} |");
                }
            }
            s + "\n"
        };
        let mut s = line(&self.header);
        s += "|";
        for (j, wj) in w.iter().enumerate() {
            s += &if j < self.left { format!(" {} |", "-".repeat(*wj)) } else { format!(" {}: |", "-".repeat(wj - 1)) };
        }
        s += "\n";
        for r in &self.rows {
            s += &line(r);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_markdown_with_the_command_on_top() {
        let t = Table {
            title: "burst".into(),
            intro: vec!["ns per notification.".into()],
            header: vec!["mechanism".into(), "ns".into()],
            rows: vec![vec!["epoll".into(), "1,234".into()], vec!["socknotify".into(), "99.5".into()]],
            left: 1,
        };
        let md = t.render(true, "cargo run --release -p socknotify-bench -- burst");
        let want = "### burst\n\n```sh\ncargo run --release -p socknotify-bench -- burst\n```\n\n\
                    ns per notification.\n\n\
                    | mechanism  |    ns |\n\
                    | ---------- | ----: |\n\
                    | epoll      | 1,234 |\n\
                    | socknotify |  99.5 |\n";
        assert_eq!(md, want);
        assert!(t.render(false, "x").starts_with("== burst ==\n"));
    }
}

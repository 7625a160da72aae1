//! # Progress on stderr
//!
//! On a terminal, one indicatif bar per lane with the check or scenario
//! running; otherwise (CI, a pipe, a test harness) plain lines, one per step.

use std::io::IsTerminal as _;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Where progress goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// indicatif bars on a terminal.
    Bars(MultiProgress),
    /// Plain lines.
    Plain,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn detect() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::Bars(MultiProgress::new())
        } else {
            Progress::Plain
        }
    }

    /// A bar for `lane`, of `len` steps when known.
    pub fn lane(&self, lane: &str, len: Option<u64>) -> Bar {
        match self {
            Progress::Bars(multi) => {
                let bar = match len {
                    Some(n) => multi.add(ProgressBar::new(n)),
                    None => multi.add(ProgressBar::new_spinner()),
                };
                let template = if len.is_some() {
                    "{prefix:>8} [{bar:30}] {pos}/{len} {elapsed:>4} {wide_msg}"
                } else {
                    "{prefix:>8} {spinner} {pos} done {elapsed:>4} {wide_msg}"
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_prefix(lane.to_string());
                bar.enable_steady_tick(std::time::Duration::from_millis(200));
                Bar {
                    bar: Some(bar),
                    lane: lane.to_string(),
                }
            }
            Progress::Plain => Bar {
                bar: None,
                lane: lane.to_string(),
            },
        }
    }
}

/// One lane's progress.
#[derive(Debug, Clone)]
pub struct Bar {
    bar: Option<ProgressBar>,
    lane: String,
}

impl Bar {
    /// Shows what is running now.
    pub fn running(&self, what: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(what.to_string()),
            None => eprintln!("[{}] {what}", self.lane),
        }
    }

    /// One step done, with a line saying how it ended.
    pub fn done(&self, line: &str) {
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(line.to_string());
            }
            None => eprintln!("[{}] {line}", self.lane),
        }
    }

    /// The lane is over.
    pub fn finish(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(line.to_string()),
            None => eprintln!("[{}] {line}", self.lane),
        }
    }
}

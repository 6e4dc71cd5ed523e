//! One step's two streams through the shared command manager, over every interleaving.
//!
//! The runner reads stdout and stderr on two threads and processes whatever each has queued,
//! stderr's lines first (`ProcessInvoker.ProcessOutput`), so any merge that keeps each stream's
//! own order can happen. The command manager's state is small (a stop token, echo, aborted), so
//! the set of states reachable after `i` stdout lines and `j` stderr lines is computed for every
//! `(i, j)` (counting only lines that can matter), and each line's outcome is collected from
//! every state it can meet.

use super::{Command, Outcome, STOP, State, lines, masks_of, process};
use std::collections::HashSet;

/// Which of the container's streams a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of the step's output and what the runner may do with it.
#[derive(Clone, Debug)]
pub struct LineReport {
    pub stream: Stream,
    /// Its index within its stream's lines.
    pub index: usize,
    pub text: String,
    /// Every distinct outcome over all interleavings, in the order first met.
    pub outcomes: Vec<Outcome>,
}

impl LineReport {
    /// The commands the runner dispatches for this line in some interleaving (a line can be a
    /// stop token's resume in one and a legacy `##[...]` command in another).
    pub fn commands(&self) -> Vec<&Command> {
        let mut found: Vec<&Command> = Vec::new();
        for command in self.outcomes.iter().filter_map(Outcome::command) {
            if !found.contains(&command) {
                found.push(command);
            }
        }
        found
    }

    /// Whether the runner dispatches the line's command in every interleaving.
    pub fn always_acted(&self) -> bool {
        !self.outcomes.is_empty() && self.outcomes.iter().all(|o| o.command().is_some())
    }

    /// Whether the line is shown as text in every interleaving.
    pub fn always_shown(&self) -> bool {
        self.outcomes.iter().all(|o| *o == Outcome::Shown)
    }
}

/// Every line of a container step's stdout then stderr, each with the outcomes it can have.
pub fn step(stdout: &[u8], stderr: &[u8]) -> Vec<LineReport> {
    let texts = [lines(stdout), lines(stderr)];
    let mut reports: Vec<LineReport> = Vec::new();
    for (stream, text) in [Stream::Stdout, Stream::Stderr].into_iter().zip(&texts) {
        reports.extend(text.iter().enumerate().map(|(index, t)| LineReport {
            stream,
            index,
            text: t.clone(),
            outcomes: Vec::new(),
        }));
    }
    // A line that is text and leaves the state alone whatever the stop token (any that a
    // `stop-commands` line could set) cannot matter to the order: only the others are
    // interleaved, and plain lines take the states reachable around them.
    let tokens: Vec<Option<String>> = std::iter::once(None)
        .chain(reports.iter().filter_map(|r| match process(&State::default(), &r.text).1 {
            Outcome::Acted { command, .. } if command.name == STOP => Some(Some(command.data)),
            _ => None,
        }))
        .collect();
    let plain = |text: &str| {
        tokens.iter().all(|token| {
            let state = State { stop_token: token.clone(), ..State::default() };
            process(&state, text) == (state.clone(), Outcome::Shown)
        })
    };
    // For each stream: the report indices of its active lines, and for every report how many
    // active lines of its stream come before it.
    let mut active: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
    let mut before = vec![0; reports.len()];
    for (k, report) in reports.iter().enumerate() {
        let s = usize::from(report.stream == Stream::Stderr);
        before[k] = active[s].len();
        if !plain(&report.text) {
            active[s].push(k);
        }
    }
    // grid[i][j]: the states reachable after i active stdout lines and j active stderr lines.
    let (n, m) = (active[0].len(), active[1].len());
    let mut grid: Vec<Vec<HashSet<State>>> = vec![vec![HashSet::new(); m + 1]; n + 1];
    grid[0][0].insert(State::default());
    for i in 0..=n {
        for j in 0..=m {
            let states: Vec<State> = grid[i][j].iter().cloned().collect();
            for state in states {
                for (s, (ni, nj)) in [(0, (i + 1, j)), (1, (i, j + 1))] {
                    let Some(&k) = active[s].get(if s == 0 { i } else { j }) else {
                        continue;
                    };
                    let (next, outcome) = process(&state, &reports[k].text);
                    record(&mut reports[k], outcome);
                    grid[ni][nj].insert(next);
                }
            }
        }
    }
    for (k, report) in reports.iter_mut().enumerate() {
        if !report.outcomes.is_empty() {
            continue;
        }
        // A plain line meets every state of its row (stdout) or column (stderr) of the grid.
        let b = before[k];
        let cells: Vec<&HashSet<State>> = match report.stream {
            Stream::Stdout => grid[b].iter().collect(),
            Stream::Stderr => grid.iter().map(|row| &row[b]).collect(),
        };
        for state in cells.into_iter().flatten() {
            let outcome = if state.aborted { Outcome::Unread } else { Outcome::Shown };
            record(report, outcome);
        }
    }
    reports
}

fn record(report: &mut LineReport, outcome: Outcome) {
    if !report.outcomes.contains(&outcome) {
        report.outcomes.push(outcome);
    }
}

/// Every command the runner dispatches in some interleaving of the two streams: stdout's lines
/// first, then stderr's, each in its own order.
pub fn commands(stdout: &[u8], stderr: &[u8]) -> Vec<Command> {
    let lines = step(stdout, stderr);
    lines.iter().flat_map(|line| line.commands().into_iter().cloned()).collect()
}

/// Every value masked in some interleaving (see [`super::Runner::masks`]).
pub fn masks(stdout: &[u8], stderr: &[u8]) -> Vec<String> {
    let mut masks: Vec<String> = Vec::new();
    for line in step(stdout, stderr) {
        for mask in line.outcomes.iter().flat_map(masks_of) {
            if !masks.contains(&mask) {
                masks.push(mask);
            }
        }
    }
    masks
}

//! # Running a scenario under shuttle
//!
//! [`explore`] runs one model under `check_random` and under PCT at depths 1, 2
//! and 3, each through a [`Runner`] whose scheduler is wrapped to count the
//! scheduling steps, so that the PCT guarantee of the run can be printed: one
//! PCT execution of a program with `n` threads and `k` steps finds a given bug of
//! depth `d` with probability at least `1 / (n * k^(d-1))` (Burckhardt et al.,
//! ASPLOS 2010).
//!
//! On a failure shuttle writes the schedule to a file under
//! `target/counterexamples/shuttle/`; [`explore`] reads it back, prints it
//! joined on one line with the command that replays it, and re-raises the
//! panic, whose message carries the violated invariant and the timeline.

// The model closure and the step counters live outside the model: std types.
#![allow(clippy::disallowed_types)]

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::rc::Rc;

use shuttle::scheduler::{PctScheduler, RandomScheduler, Schedule, Scheduler, Task, TaskId};
use shuttle::{Config, FailurePersistence, Runner};

/// Steps and threads seen by one scheduler over a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Steps {
    /// The most scheduling decisions in one execution.
    pub max_steps: usize,
    /// The most threads runnable or known in one execution.
    pub threads: usize,
    steps: usize,
}

/// A scheduler that counts the decisions of the one it wraps.
#[derive(Debug)]
struct Counting<S> {
    inner: S,
    steps: Rc<RefCell<Steps>>,
}

impl<S: Scheduler> Scheduler for Counting<S> {
    fn new_execution(&mut self) -> Option<Schedule> {
        self.steps.borrow_mut().steps = 0;
        self.inner.new_execution()
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        let next = self.inner.next_task(runnable, current, is_yielding);
        let mut steps = self.steps.borrow_mut();
        steps.steps += 1;
        steps.max_steps = steps.max_steps.max(steps.steps);
        let highest = runnable
            .iter()
            .map(|t| usize::from(t.id()) + 1)
            .max()
            .unwrap_or(0);
        steps.threads = steps.threads.max(highest);
        next
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

/// What one shuttle exploration ran.
#[derive(Debug, Clone)]
pub struct Explored {
    /// Executions under `check_random`.
    pub random: usize,
    /// Executions under PCT, per depth 1, 2, 3.
    pub pct: [usize; 3],
    /// Threads and steps seen by PCT at each depth.
    pub pct_steps: [Steps; 3],
    /// Wall time.
    pub elapsed: std::time::Duration,
}

impl Explored {
    /// All executions.
    pub fn total(&self) -> usize {
        self.random + self.pct.iter().sum::<usize>()
    }

    /// The PCT lower bound on the probability that one execution at `depth`
    /// finds a given bug of that depth: `1 / (n * k^(depth-1))`.
    pub fn pct_bound(&self, depth: usize) -> f64 {
        let steps = self.pct_steps[depth - 1];
        let n = steps.threads.max(1) as f64;
        let k = steps.max_steps.max(1) as f64;
        1.0 / (n * k.powi(depth as i32 - 1))
    }
}

impl std::fmt::Display for Explored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} executions in {:.2?}: random {}",
            self.total(),
            self.elapsed,
            self.random
        )?;
        for depth in 1..=3 {
            let p = self.pct_bound(depth);
            let runs = self.pct[depth - 1];
            let miss = (1.0 - p).powf(runs as f64);
            let steps = self.pct_steps[depth - 1];
            write!(
                f,
                "; pct d={depth} {runs} (n={} threads, k={} steps, p>={p:.2e} per execution, \
                 P[miss a depth-{depth} bug]<={miss:.2e})",
                steps.threads, steps.max_steps
            )?;
        }
        Ok(())
    }
}

/// The shuttle configuration of every run: return at once on a panic (a second
/// panic while the failed task unwinds would abort), and persist the failing
/// schedule to a file in `dir`.
pub fn config(dir: PathBuf) -> Config {
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::File(Some(dir));
    config
        .ungraceful_shutdown_config
        .immediately_return_on_panic = true;
    config
}

/// The one directory every run persists failing schedules to: shuttle installs
/// its panic hook once per process, with the configuration of the first run.
fn schedule_dir() -> PathBuf {
    let dir = crate::results::counterexample_dir().join("shuttle");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Runs `model` once with `scheduler`, returning the executions run; on a
/// failure prints the schedule on one line with the replay command for `key`.
fn run_one<S, F>(key: &str, scheduler: S, model: &Arc2<F>) -> (usize, Steps)
where
    S: Scheduler + 'static,
    F: Fn() + Send + Sync + 'static,
{
    let steps = Rc::new(RefCell::new(Steps::default()));
    let dir = schedule_dir();
    let runner = Runner::new(
        Counting {
            inner: scheduler,
            steps: steps.clone(),
        },
        config(dir.clone()),
    );
    let model = model.clone();
    let outcome = catch_unwind(AssertUnwindSafe(move || runner.run(move || (model.0)())));
    match outcome {
        Ok(executions) => {
            let steps = *steps.borrow();
            (executions, steps)
        }
        Err(panic) => {
            report_schedule(key, &dir);
            resume_unwind(panic)
        }
    }
}

/// A shareable model closure.
#[derive(Debug)]
struct Arc2<F>(std::sync::Arc<F>);

impl<F> Clone for Arc2<F> {
    fn clone(&self) -> Self {
        Arc2(self.0.clone())
    }
}

/// Prints the newest schedule in `dir` on one line and the command replaying
/// it; writes the replay file (see [`crate::results::ReplayFile`]) beside the failing
/// execution's counterexample and adds the schedule to that counterexample.
/// Returns the schedule.
pub fn report_schedule(key: &str, dir: &std::path::Path) -> Option<String> {
    let newest = std::fs::read_dir(dir).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    });
    match newest.and_then(|p| std::fs::read_to_string(p).ok()) {
        Some(text) => {
            let schedule: String = text.split_whitespace().collect();
            eprintln!("shuttle schedule (one line): {schedule}");
            eprintln!(
                "replay: FASTZAP_REPLAY={key} FASTZAP_SCHEDULE={schedule} cargo shuttle \
                 --test {} -- replay --exact --nocapture --include-ignored",
                test_target()
            );
            if let Some(cx) = crate::mailbox::last_counterexample() {
                crate::results::Counterexample::attach_schedule(&cx, &schedule);
                let file = crate::results::ReplayFile {
                    target: test_target(),
                    model: key.to_string(),
                    schedule: schedule.clone(),
                };
                let path = cx.with_extension("schedule");
                match std::fs::write(&path, file.render()) {
                    Ok(()) => eprintln!(
                        "replay file: {} (`fastzap verify --replay {}`)",
                        path.display(),
                        path.display()
                    ),
                    Err(e) => eprintln!("could not write {}: {e}", path.display()),
                }
            }
            Some(schedule)
        }
        None => {
            eprintln!("(no schedule file found in {})", dir.display());
            None
        }
    }
}

/// The name of the running test target (`shuttle_scenarios`, ...), from the
/// test binary's file name without cargo's hash suffix.
fn test_target() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .and_then(|stem| stem.rsplit_once('-').map(|(name, _)| name.to_string()))
        .unwrap_or_else(|| "<test target>".to_string())
}

/// Finds the model named `key` in a test file's table of models.
pub fn lookup<T: Copy, P: Copy>(models: &[(&str, T, P)], key: &str) -> (T, P) {
    models
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, model, params)| (*model, *params))
        .unwrap_or_else(|| panic!("no model named {key:?}"))
}

/// Explores `model`: `iterations` random executions, then `iterations` PCT
/// executions at each depth 1, 2, 3. `key` names the model for the replay
/// command. Panics (after printing the schedule) on the first failure.
pub fn explore<F>(key: &str, iterations: usize, model: F) -> Explored
where
    F: Fn() + Send + Sync + 'static,
{
    let started = std::time::Instant::now();
    let model = Arc2(std::sync::Arc::new(model));
    let (random, _) = run_one(key, RandomScheduler::new(iterations), &model);
    let mut pct = [0; 3];
    let mut pct_steps = [Steps::default(); 3];
    for depth in 1..=3 {
        let (runs, steps) = run_one(key, PctScheduler::new(depth, iterations), &model);
        pct[depth - 1] = runs;
        pct_steps[depth - 1] = steps;
    }
    Explored {
        random,
        pct,
        pct_steps,
        elapsed: started.elapsed(),
    }
}

/// Runs `iterations` PCT executions at `depth` only, for a bug that needs
/// exactly that many preemptions at the right places (S2's bug-3 twin: the
/// zapper preempted after its bump, the reader inside its walk). Returns the
/// executions run; panics (after printing the schedule) on the first failure.
pub fn explore_pct<F>(key: &str, depth: usize, iterations: usize, model: F) -> usize
where
    F: Fn() + Send + Sync + 'static,
{
    let model = Arc2(std::sync::Arc::new(model));
    run_one(key, PctScheduler::new(depth, iterations), &model).0
}

/// Replays `schedule` (as printed by [`explore`]) against `model`.
pub fn replay<F>(model: F, schedule: &str)
where
    F: Fn() + Send + Sync + 'static,
{
    shuttle::replay(model, schedule);
}
